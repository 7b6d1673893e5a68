"""Mesh stage per corpus mesh: seconds per step and in total (target: bunny < 1.5 s).

``total`` is load + process_mesh + the multicolor GLB (UV atlas, bake, PNG + GLB), the
work one order does in the mesh stage; the solid GLB and the preview are listed apart.
Run: ``.venv/bin/python -m bench mesh`` (one pass per mesh; the machine is shared, so
compare runs taken under the same load; ``cpu`` is this process's CPU time, steadier).
"""

from __future__ import annotations

import time

from bench.common import corpus_dir, print_table

TARGET_TOTAL_S = {"stanford-bunny": 1.5}
STEPS = (
    "repair",
    "smooth",
    "budget",
    "self_intersections",
    "check",
    "report",
    "uv",
    "bake",
    "glb",
)


def bench_one(name: str) -> dict[str, object]:
    from sculptsvc.mesh import MeshParams, export_glb, load_mesh, process_mesh, render_preview

    start = time.perf_counter()
    cpu_start = time.process_time()
    mesh = load_mesh(corpus_dir() / "meshes" / f"{name}.obj")
    load_s = time.perf_counter() - start
    result = process_mesh(mesh, MeshParams())
    export_glb(result, mode="multicolor")
    total = time.perf_counter() - start
    cpu = time.process_time() - cpu_start
    t = time.perf_counter()
    export_glb(result, mode="solid", color_hex="#C04A3B")
    solid_s = time.perf_counter() - t
    t = time.perf_counter()
    render_preview(result, mode="solid", color_hex="#C04A3B", size=512)
    preview_s = time.perf_counter() - t
    row: dict[str, object] = {
        "mesh": name,
        "tris_in": len(mesh.faces),
        "tris_out": result.report.triangles,
        "repair_via": result.report.repair_method,
        "load": load_s,
    }
    row.update({step: result.timings.get(step, 0.0) for step in STEPS})
    row["total"] = total
    row["cpu"] = cpu  # CPU seconds of this process: steadier than wall time on a shared box
    target = TARGET_TOTAL_S.get(name)
    row["target"] = f"<{target}" if target else ""
    row["ok"] = "" if target is None else ("yes" if total < target else "NO")
    row["solid_glb"] = solid_s
    row["preview"] = preview_s
    row["charts"] = result.atlas().charts
    return row


def main() -> None:
    meshes = sorted(p.stem for p in (corpus_dir() / "meshes").glob("*.obj"))
    if not meshes:
        print_table("mesh stage (no corpus found)", [])
        return
    bench_one(meshes[0])  # warm-up: imports, OSMesa context, allocator
    print_table("mesh stage, seconds per step (one pass each)", [bench_one(m) for m in meshes])


if __name__ == "__main__":
    main()
