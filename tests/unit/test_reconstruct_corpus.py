"""Every corpus picture through the classic stylizer and reconstructor: one closed shell
whose front projection keeps the picture's outline."""

from __future__ import annotations

from pathlib import Path

import manifold3d
import numpy as np
import pytest
import trimesh

from sculptsvc.imaging import decode_image
from sculptsvc.reconstruct.classic import ClassicReconstructor, silhouette_iou
from sculptsvc.settings import Settings
from sculptsvc.stylize.classic import ClassicStylizer
from tests.conftest import corpus_dir

pytestmark = [pytest.mark.corpus, pytest.mark.slow]

IMAGES = sorted(p.name for p in (corpus_dir() / "images").glob("*.png")) or ["(no corpus)"]


@pytest.mark.parametrize("name", IMAGES)
def test_corpus_picture_becomes_a_faithful_closed_shell(corpus: Path, name: str) -> None:
    settings = Settings()
    image = decode_image(
        (corpus / "images" / name).read_bytes(),
        max_bytes=settings.max_image_bytes,
        max_pixels=settings.max_image_pixels,
    )
    styled = ClassicStylizer().stylize(image, seed=0)
    mesh = ClassicReconstructor().reconstruct(styled, seed=0)

    tm = trimesh.Trimesh(mesh.vertices, mesh.faces, process=False)
    assert tm.is_watertight and tm.is_winding_consistent and tm.volume > 0
    solid = manifold3d.Manifold(
        manifold3d.Mesh(
            vert_properties=mesh.vertices.astype(np.float32),
            tri_verts=mesh.faces.astype(np.uint32),
        )
    )
    assert solid.status() == manifold3d.Error.NoError
    assert len(solid.decompose()) == 1  # one shell
    assert silhouette_iou(mesh.vertices, mesh.faces, styled.mask) > 0.95
    # A sculpture, not a plate: depth is a real fraction of the size.
    extents = tm.extents
    assert 0.08 < extents[2] / extents[:2].max() < 0.5
    assert len(mesh.faces) > 20_000  # enough detail for the mesh stage to decimate from
