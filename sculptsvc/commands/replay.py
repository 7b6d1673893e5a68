"""`sculpt replay` and `sculpt reproduce`: QA's tools to run published orders again."""

from __future__ import annotations

import json
from datetime import datetime
from enum import StrEnum

import typer


class Source(StrEnum):
    dlq = "dlq"
    orders = "orders"


class Target(StrEnum):
    input = "input"
    qa = "qa"


def register(app: typer.Typer) -> None:
    @app.command()
    def replay(
        source: Source = typer.Option(Source.dlq, "--from", help="Dead-letter or order topic."),
        target: Target = typer.Option(Target.qa, "--to", help="Order topic or the QA topic."),
        order_id: str | None = typer.Option(None, help="Only this order (the Kafka key)."),
        since: datetime | None = typer.Option(None, help="Only records at or after (ISO)."),
        until: datetime | None = typer.Option(None, help="Only records at or before (ISO)."),
        partition: int | None = typer.Option(None, help="Only this partition."),
        start_offset: int | None = typer.Option(None, help="First offset (with --partition)."),
        end_offset: int | None = typer.Option(None, help="Last offset, inclusive."),
        dry_run: bool = typer.Option(False, help="List what would be re-published."),
        as_json: bool = typer.Option(False, "--json", help="Machine-readable output."),
    ) -> None:
        """Re-publish events (dead letters as their original bytes) to the input or QA topic."""
        from sculptsvc.service.replay import Selection, original_of, republish, scan
        from sculptsvc.settings import Settings

        settings = Settings()
        topic = settings.topic_dlq if source is Source.dlq else settings.topic_orders
        target_topic = settings.topic_orders if target is Target.input else settings.topic_qa
        selection = Selection(order_id, since, until, partition, start_offset, end_offset)

        async def run() -> list:
            found = await scan(settings, topic, selection)
            records = [original_of(r, settings) for r in found] if source is Source.dlq else found
            if not dry_run:
                await republish(settings, records, target_topic)
            return records

        import asyncio  # here, not at the top: `sculpt --help` need not load it

        records = asyncio.run(run())
        rows = [
            {
                "from": f"{r.topic}/{r.partition}/{r.offset}",
                "key": (r.key or b"").decode("utf-8", "replace"),
                "bytes": len(r.value or b""),
            }
            for r in records
        ]
        summary = {"source": topic, "target": target_topic, "dry_run": dry_run, "records": rows}
        if as_json:
            typer.echo(json.dumps(summary, indent=2))
        else:
            verb = "would re-publish" if dry_run else "re-published"
            typer.echo(f"{verb} {len(rows)} record(s) from {topic} to {target_topic}")
            for row in rows:
                typer.echo(f"  {row['from']:<40} key={row['key']} ({row['bytes']} bytes)")

    @app.command()
    def reproduce(
        order_id: str = typer.Argument(..., help="Order to re-run."),
        revision: int | None = typer.Option(None, help="Revision (default: latest published)."),
        as_json: bool = typer.Option(False, "--json", help="Machine-readable output."),
    ) -> None:
        """Re-run a published order locally and compare artifact hashes with the published ones."""
        from sculptsvc.events import ModelReady, OrderPlaced
        from sculptsvc.pipeline import options_from_order, run_pipeline
        from sculptsvc.service.intake import parse_order, resolve_image
        from sculptsvc.service.replay import Selection, compare_hashes, published_outcome, scan
        from sculptsvc.settings import Settings

        settings = Settings()

        async def fetch() -> tuple[OrderPlaced | None, dict]:
            orders = [
                parse_order(r.value)
                for r in await scan(settings, settings.topic_orders, Selection(order_id=order_id))
            ]
            published = await published_outcome(settings, order_id, revision)
            wanted = revision or published.get(ModelReady.event_type, {}).get("revision")
            matching = [o for o in orders if wanted is None or o.revision == wanted]
            return (matching[-1] if matching else None), published

        import asyncio

        order, published = asyncio.run(fetch())
        if order is None or not published:
            typer.echo(f"order {order_id} (revision {revision or 'latest'}) not found", err=True)
            raise typer.Exit(2)

        from sculptsvc.ai.backends import load_reconstructor, load_stylizer

        result = run_pipeline(
            resolve_image(order.image, settings),
            options_from_order(order, settings),
            load_stylizer(settings),
            load_reconstructor(settings),
            settings,
        )
        rows = compare_hashes(published, result.artifacts)
        same = all(r["equal"] for r in rows)
        if as_json:
            typer.echo(
                json.dumps(
                    {
                        "order_id": order_id,
                        "revision": order.revision,
                        "identical": same,
                        "artifacts": rows,
                    },
                    indent=2,
                )
            )
        else:
            typer.echo(
                f"order {order_id} revision {order.revision}: "
                + ("identical" if same else "DIFFERENT")
            )
            for r in rows:
                mark = "==" if r["equal"] else "!="
                typer.echo(f"  {r['artifact']:<12} {r['published']} {mark} {r['local']}")
        raise typer.Exit(0 if same else 1)
