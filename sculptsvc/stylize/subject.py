"""Subject extraction: which pixels of a customer's picture are the thing to sculpt.

Used by both stylizers (classic and diffusion). Sources, in order of trust:

1. a hint from the shop (:class:`SubjectHint`): a mask is taken as the subject; a box
   makes everything outside it certain background;
2. the picture's alpha channel, when it cuts out a subject;
3. a background estimate for ordinary photos: the frame of the picture is modelled by a
   smooth colour surface (a gradient sky, a vignetted studio wall) and by a few colour
   clusters (a floor and a wall); pixels far from both seed OpenCV's GrabCut. Frame pixels
   that do not fit the model (a subject standing on the bottom edge) are not forced to
   background. Flat bars at the picture's edges (letterbox bars, the lines of a printed
   border) are cut off first: they are neither that frame nor background to model. When
   the colour model and GrabCut disagree, a frame colour that GrabCut found mostly inside
   the subject is the subject's own where it touches the frame: the background is
   modelled again without it, and the picture seeded again. If they still disagree,
   the colour model's own subject is taken when it is clean by itself (its parts hold
   most of it and their outline lies on edges: red letters on grass, whose gaps GrabCut
   fills). Where they agree, the colour model's clean subject still replaces GrabCut's
   when its outline lies on edges more and what it leaves out is texture (grass or wood
   grain GrabCut took beside the subject, not a low-contrast part of it). Where the two
   agree and a frontal face with a skin-coloured centre touches
   the subject, the subject is a person: GrabCut is seeded again with their head and
   the body below it (a dark jacket filling the bottom edge, a face as pale as the
   wall). Then a smooth surface the subject covers in part, and that does not reach the
   frame, is completed (the lower half of a mast in a frame colour, the inside wall of
   a cup).

Then every part of the subject is kept (letters of a logo, a loose handle or limb), not
only the largest. In a photo, a thin strand that joins the subject to something the frame
cuts (the rim of a plate touching a letter) is cut first, so that thing stays background.
Parts at least ``min_part_fraction`` of the largest that lie within
``max_part_gap`` of the subject grow it, nearest first; specks and far-away clutter do not.
The parts are joined by thin bridges along their shortest gaps (a minimum spanning tree),
because a sculpture is cast in one piece. Small holes are filled, the outline smoothed.

When the result cannot be trusted, ``NoSubject`` is raised with a message a shop can show
its customer: nothing stands out, the "subject" fills or frames the picture (that is
background), the background model and GrabCut disagree about most of the subject and the
colour model's own subject is not clean, or the outline found runs over smooth background
instead of along edges in the picture.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Any

import cv2
import numpy as np
from scipy import ndimage
from scipy.cluster.vq import kmeans2
from scipy.sparse.csgraph import minimum_spanning_tree

from sculptsvc.errors import InvalidImage, NoSubject

_MIN_MATTING_CONTRAST = 6.0  # Lab units: below, subject and background are too alike to
# place the outline by colour, and GrabCut's cut stays
_MASK_LEVEL = 128  # a hint mask's alpha (or grey) at or above this is subject
_CASCADE_WINDOW = 24  # pixels: the face cascade's window, the smallest face it can find
CUSTOMER_ADVICE = (
    "Please send a photo in which the subject stands out clearly from a plainer "
    "background, or mark the subject when you order."
)


@dataclass(frozen=True)
class SubjectHint:
    """What a shop knows about the subject; coordinates are fractions of the picture.

    box: (left, top, right, bottom) in [0, 1]; mask: (h, w) bool at any resolution.
    """

    box: tuple[float, float, float, float] | None = None
    mask: np.ndarray | None = None


def hint_from_event(hint: Any) -> SubjectHint | None:
    """The stylizers' hint from ``events.SubjectHint`` (box fractions, or an inline PNG
    mask); ``InvalidImage`` when the mask PNG cannot be decoded."""
    if hint is None:
        return None
    if hint.box is not None:
        b = hint.box
        return SubjectHint(box=(b.left, b.top, b.right, b.bottom))
    import io

    from PIL import Image, UnidentifiedImageError

    try:
        with Image.open(io.BytesIO(hint.mask.decoded())) as img:
            img.load()
            if "A" in img.getbands():
                values = np.asarray(img.getchannel("A"))
            else:
                values = np.asarray(img.convert("L"))
    except (UnidentifiedImageError, OSError, ValueError) as exc:
        raise InvalidImage(f"subject_hint.mask is not a readable image: {exc}") from exc
    return SubjectHint(mask=values >= _MASK_LEVEL)


@dataclass(frozen=True)
class SubjectParams:
    """Tunables of subject extraction (pixel sizes are at ``analysis_size``)."""

    analysis_size: int = 400
    """Longest side the photo path runs at (GrabCut's cost grows with the pixel count)."""
    alpha_size: int = 512
    """Longest side the alpha path runs at."""
    alpha_threshold: int = 128
    """Alpha at or above this is subject."""
    min_transparent_fraction: float = 0.01
    """An alpha channel is trusted only if at least this share of pixels is transparent."""
    border_px: int = 4
    """Width of the frame sampled as the background model."""
    border_clusters: int = 4
    """Colours the frame is summarised by (walls, floors)."""
    background_distance: float = 12.0
    """Lab distance (about 2-3 just-noticeable differences) under which a pixel looks like
    the background, or more where the frame itself is that noisy."""
    noise_factor: float = 3.0
    """The 'looks like background' distance is at least this x the frame's own spread."""
    grabcut_iterations: int = 5
    min_frame_colour_share: float = 0.02
    """A frame colour held by fewer of the frame's pixels than this is not background: it
    is where the subject touches the frame (a mast on the bottom edge), or a speck. Kept,
    it would make the subject read as background, and the order be refused as "nearly
    uniform" (a mast on the bottom edge: 3 of 10 k-means seeds did that)."""
    rng_seed: int = 0
    """Seeds the k-means and GrabCut. A constant, not the order's seed: the outline is
    the picture's alone, so a customer who re-orders a photo with another seed (for another
    variation) gets the same subject, never a refusal the first order did not get."""
    min_subject_fraction: float = 0.005
    """A subject smaller than this share of the picture is noise, not a subject."""
    min_subject_span_px: int = 48
    """Least length of the subject's longest side in the pixels its outline is drawn from
    (analysis pixels for a photo or a hint mask, the picture's own for an alpha cut-out):
    below it the outline is a blob of a few dozen pixels, too coarse to sculpt."""
    max_subject_fraction: float = 0.9
    """A 'subject' filling the frame means the background was not found."""
    max_frame_contact: float = 0.45
    """A 'subject' covering more of the picture's frame than this is background."""
    min_agreement: float = 0.6
    """Least share of the final subject that the colour model also calls foreground."""
    colour_subject_min_share: float = 0.5
    """Where GrabCut and the colour model disagree, the colour model's subject is taken
    only if its parts hold at least this share of what it calls subject,"""
    colour_subject_max_weak_outline: float = 0.05
    """... and at most this share of their outline runs over smooth colour. Measured on
    the disagreements (share held, outline over smooth colour): red letters on grass
    0.85 and 0.0 (taken: IoU 0.95); the cat's face 0.86 and 0.22, the cameraman 0.44
    and 0.25 (both refused, as before)."""
    outline_preference_margin: float = 0.01
    """Where the two agree, the colour model's clean subject replaces GrabCut's when this
    much less of its outline runs over smooth colour. GrabCut strays on busy or similar
    backgrounds (grass between letters, a table's grain beside a cow) while agreeing with
    the colour model above ``min_agreement``; the same picture enlarged to 1600 px went
    from one side of that threshold to the other. Measured (GrabCut's share, the colour
    model's; IoU before and after): text on grass at 1600 px 0.052, 0.0 (0.654 to 0.91),
    a cow on a table 0.045, 0.0 (0.88 to 0.97), a chair on bricks at 1600 px 0.038, 0.05
    (kept), a chair cut by the frame 0.015, 0.014 (kept: within the margin)."""
    outline_preference_max_smooth_drop: float = 0.5
    """... unless this share or more of what the colour model leaves out is smooth
    (``surface_step``): that is a part of the subject with little contrast to the
    background (a blue tower against a blue sky: 0.83 smooth, its outline 0.10 over smooth
    colour), not the grass or wood grain GrabCut strays into (0.03-0.27 smooth)."""
    outline_preference_max_added: float = 1.0
    """... and only if it adds at most this share of GrabCut's subject: the same subject
    outlined better (letters GrabCut cut short, at 1600 px: 0.45; the motorcycle photo:
    0.41; the photo set: 0-0.12), not a second thing GrabCut left out."""
    subject_colour_ratio: float = 3.0
    """A frame colour explaining this many times more of GrabCut's subject than of the
    frame is the subject's own (where it, or a second one, touches the frame), not
    background: when the two disagree, the background is modelled again without it.
    Measured where they disagree (the photo set, scikit-image's and other public photos):
    5.3-10.6x for the colours of subjects cut by the frame, 3.9x for an arm on a blue
    screen (a colour on 13 % of the frame can reach at most 1 / 0.13 = 7.7x), at most
    2.5x otherwise (the cameraman photo, still refused)."""
    min_part_fraction: float = 0.01
    """Parts smaller than this share of the largest part are specks, not parts."""
    strand_px: float = 2.0
    """Photo path: a strand at most about twice this wide that joins the subject to
    something cut by the picture's frame is cut there (see :func:`cut_frame_strands`)."""
    max_part_gap: float = 0.75
    """A part joins the subject when its gap to it is at most this x the smaller of the
    two sizes (letters and words are spaced by less than a letter's size)."""
    bridge_width: float = 0.012
    """Width of the bridges that join separate parts, x the picture's longest side."""
    fill_hole_fraction: float = 0.02
    """Holes smaller than this share of the subject are filled; larger ones (a teapot's
    handle, the gap under a chair's arm) stay as through-holes of the sculpture."""
    outline_sigma_px: float = 1.5
    """Gaussian smoothing of the outline, in pixels."""
    outline_band_px: int = 2
    """Photo path: the outline is re-placed at half coverage within this many pixels."""
    bar_tolerance: int = 12
    """Photo path: a row (or column) at an edge is one flat colour when 98 % of its pixels
    are within this many levels of its median (JPEG noise)."""
    bar_edge_step: int = 40
    """... and the flat run is a bar (letterbox, a printed border) only if the picture
    steps away from its colour by more than this many levels right after it,"""
    bar_edge_fraction: float = 0.9
    """... across at least this share of the row: a plain backdrop ends where the subject
    begins, a bar where the picture begins."""
    max_bar_fraction: float = 0.25
    """Bars are looked for in at most this share of each side."""
    edge_band_px: int = 3
    """Photo path: the colours on either side of the outline are the means of the subject
    and the background pixels within this many pixels of it."""
    edge_contrast: float = 10.0
    """Lab distance (about 4 just-noticeable differences) between those two colours under
    which a stretch of the outline lies on no edge of the picture."""
    surface_step: float = 4.0
    """Photo path: neighbouring pixels whose Lab colours differ by less than this (under 2
    just-noticeable differences) lie on one smooth surface (see
    :func:`complete_surfaces`). It must stay well under a subject's edge spread over its
    anti-aliased pixels: at 8 the photo set's mast joined the sky through them."""
    surface_min_share: float = 0.1
    """... and a smooth surface is the subject's when at least this share of it was found
    as subject; less is the outline's spill onto a neighbouring surface;"""
    surface_max_growth: float = 3.0
    """... and when completing it adds at most this x the subject found (measured: the
    photo set's mast 0.49, coffee's cup wall 0.14, the mast of the unit test 1.9); more
    is a large neighbour joined to the subject by a soft transition, not a part of it (a
    plate under a cake whose colour fades into it over 40 pixels: 5.5-6)."""
    face_min_size: float = 0.1
    """Photo path: a face (scikit-image's LBP frontal-face cascade) at least this share of
    the picture's shorter side makes the subject a person (see :func:`person_seeds`);"""
    face_min_skin: float = 0.5
    """... if at least this share of the face's centre has a skin colour (YCrCb box):
    measured 0.67-1.0 on the portraits, 0.33 on the one false face of the photo set (in
    a coffee cup's crema);"""
    face_neighbours: int = 4
    """... and the cascade found it in at least this many overlapping windows (searched
    at every pixel, at sizes ``face_scale_step`` apart)."""
    face_scale_step: float = 1.2
    skin_cr: tuple[int, int] = (133, 173)
    skin_cb: tuple[int, int] = (77, 127)
    """Skin colours: Cr and Cb ranges of OpenCV's YCrCb (Chai and Ngan's box, which holds
    skin of every tone under ordinary light; only the brightness differs)."""
    max_weak_outline: float = 0.25
    """A photo's subject whose outline runs on no edge for more than this share of its
    length is not an object: it is a patch of smooth background cut out where a colour
    threshold happened to fall (the glow of a dusk sky between two towers). Outlines of
    real subjects, low-contrast ones included, measured 0-11 % on the photo set."""


def has_informative_alpha(image: np.ndarray, params: SubjectParams | None = None) -> bool:
    """True when the picture's alpha channel cuts out a subject (not a near-opaque layer)."""
    p = params or SubjectParams()
    if image.shape[2] != 4:
        return False
    transparent = float((image[..., 3] < p.alpha_threshold).mean())
    return transparent >= p.min_transparent_fraction


def find_subject(
    image: np.ndarray,
    *,
    params: SubjectParams | None = None,
    hint: SubjectHint | None = None,
) -> tuple[np.ndarray, float]:
    """The subject's mask at analysis size and that size's scale relative to ``image``.

    image: (h, w, 3|4) uint8. Returns ``(mask (h', w') bool, scale)``, ``h' = round(h *
    scale)``, one connected piece. Raises ``NoSubject`` (message for the customer).
    """
    p = params or SubjectParams()
    h, w = image.shape[:2]
    box = _box_mask(hint.box, h, w) if hint is not None and hint.box is not None else None
    picture = (slice(None), slice(None))  # where the outline is looked for
    if hint is not None and hint.mask is not None:
        scale = min(1.0, p.alpha_size / max(h, w))
        raw = _resize_mask(hint.mask, _scaled_shape(h, w, scale))
        reference, source = p.alpha_size, "hint"
    elif has_informative_alpha(image, p):
        scale = min(1.0, p.alpha_size / max(h, w))
        raw = _resize(image[..., 3], scale, cv2.INTER_AREA) >= p.alpha_threshold
        reference, source = p.alpha_size, "alpha"
    else:
        scale = min(1.0, p.analysis_size / max(h, w))
        rgb = _resize(np.ascontiguousarray(image[..., :3]), scale, cv2.INTER_AREA)
        # the picture inside letterbox bars or a printed border: the bars are neither the
        # background to model nor the frame a background sculpture would touch
        picture = picture_inside_bars(rgb, p)
        small_box = None if box is None else _resize_mask(box, rgb.shape[:2])[picture]
        lab = to_lab(rgb[picture])
        raw = _photo_subject(rgb[picture], lab, params=p, box=small_box)
        reference, source = p.analysis_size, "photo"
    if box is not None:
        raw = raw & _resize_mask(box, _scaled_shape(h, w, scale))[picture]
    parts = kept_parts(raw, p, reference_size=reference, photo=source == "photo")
    mask = join_parts(parts, p)
    _check_plausible(mask, p, photo=source == "photo" and box is None)
    if source == "photo" and box is None:  # with a shop's box, the box is the evidence
        # the bridges that join the parts are the service's, not the picture's outline
        _check_outline_on_edges(lab, parts, p)
    # an alpha cut-out keeps its own resolution downstream; the other outlines are this mask
    _check_resolution(mask, 1.0 / scale if source == "alpha" else 1.0, p)
    if source == "photo" and mask.shape != rgb.shape[:2]:
        whole = np.zeros(rgb.shape[:2], dtype=bool)
        whole[picture] = mask
        mask = whole
    return mask, scale


def subject_mask(
    image: np.ndarray,
    *,
    params: SubjectParams | None = None,
    hint: SubjectHint | None = None,
) -> np.ndarray:
    """:func:`find_subject` at the picture's own resolution, (h, w) bool."""
    small, _scale = find_subject(image, params=params, hint=hint)
    h, w = image.shape[:2]
    resized = cv2.resize(small.astype(np.float32), (w, h), interpolation=cv2.INTER_LINEAR)
    return resized >= 0.5


def picture_inside_bars(rgb: np.ndarray, p: SubjectParams) -> tuple[slice, slice]:
    """(rows, columns) of ``rgb`` inside flat-colour bars at its edges: letterbox bars, the
    line of a printed or drawn border. A bar is a run of flat rows of one colour after which
    the picture steps away from that colour across (nearly) its whole width; a plain
    backdrop is flat too, but where it ends only the subject differs from it."""
    top, bottom, left, right = 0, rgb.shape[0], 0, rgb.shape[1]
    for _ in range(3):  # a border of two lines (black, then white) is two bars
        before = (top, bottom, left, right)
        inner = rgb[top:bottom, left:right]
        top += _bar_rows(inner, p)
        bottom -= _bar_rows(inner[::-1], p)
        left += _bar_rows(inner.transpose(1, 0, 2), p)
        right -= _bar_rows(inner.transpose(1, 0, 2)[::-1], p)
        if (top, bottom, left, right) == before:
            break
    return slice(top, bottom), slice(left, right)


def _bar_rows(rgb: np.ndarray, p: SubjectParams) -> int:
    """How many leading rows of ``rgb`` are a bar (see :func:`picture_inside_bars`), with
    the blended rows after it (JPEG, resampling); 0 when they are not one."""
    limit = int(p.max_bar_fraction * rgb.shape[0])
    if limit < 1:
        return 0
    rows = rgb[: limit + 3].astype(np.int16)
    colour = np.median(rows, axis=1)  # (rows, 3)
    spread = np.quantile(np.abs(rows - colour[:, None]).max(axis=2), 0.98, axis=1)
    drift = np.abs(colour - colour[0]).max(axis=1)
    flat = (spread <= p.bar_tolerance) & (drift <= p.bar_tolerance)
    run = int(np.argmin(flat)) if not flat.all() else len(flat)
    if run == 0 or run > limit:
        return 0
    blended = 2  # rows between the bar and the picture, neither one nor the other
    after = rows[min(run + blended, len(rows) - 1)]
    stepped = (np.abs(after - colour[0]).max(axis=1) > p.bar_edge_step).mean()
    return run + blended if stepped >= p.bar_edge_fraction else 0


def _check_plausible(mask: np.ndarray, p: SubjectParams, *, photo: bool) -> None:
    fraction = float(mask.mean())
    if fraction < p.min_subject_fraction:
        raise NoSubject(
            f"We could not find a subject in this picture. {CUSTOMER_ADVICE}",
            reason="nothing stands out from the background",
            subject_fraction=round(fraction, 5),
        )
    if fraction > p.max_subject_fraction:
        raise NoSubject(
            f"The subject seems to fill the whole picture, so we cannot tell it apart from "
            f"the background. {CUSTOMER_ADVICE}",
            reason="the subject fills the frame",
            subject_fraction=round(fraction, 5),
        )
    contact = _frame_contact(mask)
    if photo and contact > p.max_frame_contact:
        raise NoSubject(
            f"We could not tell the subject apart from the background. {CUSTOMER_ADVICE}",
            reason="what was found covers most of the picture's frame: that is background",
            frame_contact=round(contact, 4),
        )


def _check_resolution(mask: np.ndarray, outline_px_per_mask_px: float, p: SubjectParams) -> None:
    """A subject found but drawn with too few pixels (far away, or a speck of texture taken
    for a subject): the sculpture would be a blob, so the customer is asked for a closer
    picture instead."""
    rows = np.flatnonzero(mask.any(axis=1))
    cols = np.flatnonzero(mask.any(axis=0))
    span = max(rows[-1] - rows[0] + 1, cols[-1] - cols[0] + 1) * outline_px_per_mask_px
    if span < p.min_subject_span_px:
        raise NoSubject(
            "The subject is too small in this picture to sculpt its outline. Please send a "
            "closer photo, or crop the picture to the subject.",
            reason="the subject is too small in the picture",
            subject_span_px=round(float(span), 1),
        )


def _check_outline_on_edges(lab: np.ndarray, mask: np.ndarray, p: SubjectParams) -> None:
    weak = weak_outline_share(lab, mask, p)
    if weak > p.max_weak_outline:
        raise NoSubject(
            f"We could not tell the subject apart from the background. {CUSTOMER_ADVICE}",
            reason="the outline found does not follow the edges of anything in the picture",
            weak_outline_share=round(weak, 4),
        )


def weak_outline_share(lab: np.ndarray, mask: np.ndarray, p: SubjectParams) -> float:
    """Share of the outline (inside the picture, not along its frame) where the colours
    just inside and just outside differ by less than ``edge_contrast``: 0 for an object
    cut out along its edges, large for a region cut out of a smooth gradient."""
    band = p.edge_band_px
    inside = ndimage.binary_erosion(mask, iterations=band, border_value=1)
    outside = ~ndimage.binary_dilation(mask, iterations=band)
    outline = mask & ~ndimage.binary_erosion(mask, border_value=1)
    outline[:band] = outline[-band:] = False  # the frame cuts the subject, no edge there
    outline[:, :band] = outline[:, -band:] = False
    fg, has_fg = _local_mean(lab, inside, band)
    bg, has_bg = _local_mean(lab, outside, band)
    measured = outline & has_fg & has_bg
    if not measured.any():
        return 0.0
    contrast = np.linalg.norm(fg[measured] - bg[measured], axis=-1)
    return float((contrast < p.edge_contrast).mean())


def _along_frame(values: np.ndarray) -> np.ndarray:
    """The values of an (h, w) array on the picture's frame, each frame pixel once."""
    return np.concatenate([values[0], values[-1], values[1:-1, 0], values[1:-1, -1]])


def _frame_contact(mask: np.ndarray) -> float:
    return float(_along_frame(mask).mean())


# --- the photo path -------------------------------------------------------------------------


def _photo_subject(
    rgb: np.ndarray, lab: np.ndarray, *, params: SubjectParams, box: np.ndarray | None
) -> np.ndarray:
    """Background model from the frame seeds GrabCut; see the module docstring."""
    h, w = rgb.shape[:2]
    b = max(1, min(params.border_px, min(h, w) // 8))
    frame = np.zeros((h, w), dtype=bool)
    frame[:b] = frame[-b:] = True
    frame[:, :b] = frame[:, -b:] = True
    if box is not None:
        # The ring just outside the box is the background to model. Where the box reaches
        # the picture's edge, the shop says the subject does too: that stretch of the
        # picture's frame is subject, not background evidence.
        ring = ndimage.binary_dilation(box, iterations=b) & ~box
        if ring.any():
            frame = ring
    colours = _frame_colours(lab[frame], params)
    seeded = _seeded_grabcut(rgb, lab, frame, colours, params=params, box=box)
    if box is not None or not seeded.found.any():  # with a shop's box, the box is the evidence
        return seeded.found
    agreement = seeded.agreement
    if agreement < params.min_agreement:
        # A frame colour that is mostly found inside the subject is the subject's own where
        # it touches the frame (a second flower cut by the bottom edge): modelled without
        # it, the background is seeded again, and the two must agree on that.
        own = seeded.subject_colours(params.subject_colour_ratio)
        if own.any():
            seeded = _seeded_grabcut(rgb, lab, frame, colours[~own], params=params, box=None)
            if not seeded.found.any():
                return seeded.found
            agreement = seeded.agreement
    if agreement < params.min_agreement:
        clean = colour_model_subject(lab, seeded.probable_fg, params)
        if clean is not None:
            return clean.found
        raise NoSubject(
            f"We could not tell the subject apart from the background. {CUSTOMER_ADVICE}",
            reason="the colour model and GrabCut disagree about the subject",
            agreement=round(agreement, 4),
        )
    found = _cleaner_outline(lab, seeded, params)
    person = person_seeds(rgb, found, params)
    if person is not None:
        found = _person_grabcut(rgb, lab, found, frame, person, params)
    return complete_surfaces(lab, found, params)


@dataclass(frozen=True)
class _Person:
    """Seeds from a face: ``face`` (its centre and the neck under the chin, certainly
    subject: the neck joins head and body even where a dark collar reads as background)
    and ``body`` (the head with its hair, and the torso below it down to the picture's
    edge: probably subject)."""

    face: np.ndarray
    body: np.ndarray


def person_seeds(rgb: np.ndarray, found: np.ndarray, params: SubjectParams) -> _Person | None:
    """Where the subject is a person, the seeds that keep the whole of them.

    In a portrait the colour model takes the clothes (and sometimes the skin) for
    background: a dark jacket fills the bottom edge, the skin is as pale as the wall.
    The subject found is then the face without the body, or the suit without the head.
    A frontal face, found by scikit-image's LBP cascade (a classical detector whose small
    XML ships with scikit-image; nothing is downloaded), with a skin-coloured centre and
    touching the subject found, means that subject is a person: their head is above the
    chin and their body below it, down to the picture's edge. None when there is no
    such face."""
    from skimage.data import lbp_frontal_face_cascade_filename
    from skimage.feature import Cascade

    h, w = found.shape
    smallest = max(_CASCADE_WINDOW, round(params.face_min_size * min(h, w)))
    if smallest > min(h, w):
        return None
    if _skin(rgb, params).sum() < params.face_min_skin * (smallest // 2) ** 2:
        return None  # no room for the skin of a face's centre: no detector run (0.1-0.3 s)
    grey = cv2.cvtColor(np.ascontiguousarray(rgb), cv2.COLOR_RGB2GRAY)
    detector = Cascade(lbp_frontal_face_cascade_filename())
    faces = detector.detect_multi_scale(
        img=grey,
        scale_factor=params.face_scale_step,
        step_ratio=1,
        min_size=(smallest, smallest),
        max_size=(min(h, w), min(h, w)),
        min_neighbor_number=params.face_neighbours,
    )
    best: _Person | None = None
    best_size = 0
    for face in faces:
        y, x, fh, fw = int(face["r"]), int(face["c"]), int(face["height"]), int(face["width"])
        centre = (slice(y + fh // 4, y + 3 * fh // 4), slice(x + fw // 4, x + 3 * fw // 4))
        skin = float(_skin(rgb[centre], params).mean())
        # the subject found reaches the face, or the neck under it
        near = found[max(0, y - fh // 2) : y + 2 * fh, max(0, x - fw // 2) : x + fw + fw // 2]
        if skin < params.face_min_skin or not near.any() or fh * fw <= best_size:
            continue
        core = np.zeros((h, w), dtype=bool)
        core[centre] = True
        middle = x + fw // 2
        core[y + fh : y + fh + fh // 2, middle - fw // 4 : middle + fw // 4] = True  # neck
        body = np.zeros((h, w), dtype=bool)  # in face sizes: the hair half a face high,
        body[max(0, y - fh // 2) : y + fh, max(0, x - fw // 4) : x + fw + fw // 4] = True
        # the shoulders three faces wide
        body[y + fh :, max(0, middle - 3 * fw // 2) : middle + 3 * fw // 2] = True
        best, best_size = _Person(face=core, body=body), fh * fw
    return best


def _skin(rgb: np.ndarray, params: SubjectParams) -> np.ndarray:
    """(h, w) bool: pixels of a skin colour (``skin_cr``, ``skin_cb``)."""
    ycc = cv2.cvtColor(np.ascontiguousarray(rgb), cv2.COLOR_RGB2YCrCb)
    cr, cb = ycc[..., 1], ycc[..., 2]
    (cr_lo, cr_hi), (cb_lo, cb_hi) = params.skin_cr, params.skin_cb
    return (cr >= cr_lo) & (cr <= cr_hi) & (cb >= cb_lo) & (cb <= cb_hi)


def _person_grabcut(
    rgb: np.ndarray,
    lab: np.ndarray,
    found: np.ndarray,
    frame: np.ndarray,
    person: _Person,
    params: SubjectParams,
) -> np.ndarray:
    """GrabCut again, seeded with the subject found and the person's head and body as
    probable subject (the body may run off the picture's edge), the face as subject.
    The subject is the person: pieces that touch neither head nor body (a model rocket
    beside her head) are left out, whatever they hold (a guitar, a cup) stays with the
    hand that holds it."""
    gc = np.where(found | person.body, cv2.GC_PR_FGD, cv2.GC_PR_BGD).astype(np.uint8)
    gc[frame & ~person.body] = cv2.GC_BGD
    gc[person.face] = cv2.GC_FGD
    pieces, _count = ndimage.label(_grabcut(rgb, gc, params))
    touching = np.unique(pieces[person.body | person.face])
    person_found = np.isin(pieces, touching[touching > 0])
    return refine_outline(lab, person_found, params.outline_band_px)


def _cleaner_outline(lab: np.ndarray, seeded: _Seeded, params: SubjectParams) -> np.ndarray:
    """GrabCut's subject, or the colour model's clean subject where its outline lies on
    the picture's edges clearly more (``outline_preference_margin``), it adds no second
    thing (``outline_preference_max_added``) and what it leaves out of GrabCut's is
    texture (``outline_preference_max_smooth_drop``)."""
    clean = colour_model_subject(lab, seeded.probable_fg, params)
    if clean is None:
        return seeded.found
    parts = kept_parts(seeded.found, params, reference_size=params.analysis_size, photo=True)
    if not parts.any():
        return seeded.found  # find_subject refuses it, as it did
    grabcut_weak = weak_outline_share(lab, parts, params)
    if clean.weak_outline + params.outline_preference_margin > grabcut_weak:
        return seeded.found
    added = int((clean.found & ~seeded.found).sum())
    if added > params.outline_preference_max_added * int(seeded.found.sum()):
        return seeded.found  # more than a cleaner outline: other things the model calls subject
    dropped = seeded.found & ~clean.found
    if dropped.any():
        smooth = smooth_pixels(lab, params.surface_step)
        if float(smooth[dropped].mean()) >= params.outline_preference_max_smooth_drop:
            return seeded.found  # a low-contrast part of the subject, not texture
    return clean.found


@dataclass(frozen=True)
class _ColourSubject:
    found: np.ndarray  # (h, w) bool, outline re-placed
    weak_outline: float  # share of its parts' outline over smooth colour


def colour_model_subject(
    lab: np.ndarray, probable_fg: np.ndarray, params: SubjectParams
) -> _ColourSubject | None:
    """The colour model's own subject, outline re-placed, when GrabCut strays from it but it
    is clean by itself: its parts hold at least ``colour_subject_min_share`` of the pixels
    it calls subject (not specks scattered over a busy background), and their outline lies
    on edges of the picture all round (at most ``colour_subject_max_weak_outline`` of it
    runs over smooth colour). Red letters on grass: GrabCut takes the grass between them
    and the two disagree, while the colour model alone draws the letters. None otherwise."""
    found = refine_outline(lab, probable_fg, params.outline_band_px)
    parts = kept_parts(found, params, reference_size=params.analysis_size, photo=True)
    if not parts.any():
        return None
    held = float((parts & found).sum() / int(found.sum()))
    if held < params.colour_subject_min_share:
        return None
    weak = weak_outline_share(lab, parts, params)
    if weak > params.colour_subject_max_weak_outline:
        return None
    # as GrabCut's subject is: find_subject chooses and cleans its parts
    return _ColourSubject(found, weak)


def smooth_pixels(lab: np.ndarray, step_limit: float) -> np.ndarray:
    """(h, w) bool: pixels whose Lab steps to all four neighbours are under ``step_limit``."""
    h, w = lab.shape[:2]
    across, down = np.diff(lab, axis=1), np.diff(lab, axis=0)
    across = np.einsum("ijk,ijk->ij", across, across)  # squared steps, (h, w - 1)
    down = np.einsum("ijk,ijk->ij", down, down)  # (h - 1, w)
    step = np.zeros((h, w), dtype=np.float32)  # a pixel's largest step to a neighbour
    step[:, :-1] = across
    np.maximum(step[:, 1:], across, out=step[:, 1:])
    np.maximum(step[:-1], down, out=step[:-1])
    np.maximum(step[1:], down, out=step[1:])
    return step < step_limit**2


def complete_surfaces(lab: np.ndarray, found: np.ndarray, params: SubjectParams) -> np.ndarray:
    """``found`` with the rest of every smooth surface it covers in part, where that
    surface does not reach the picture's frame.

    The colour model judges each pixel by its colour alone: the lower half of a grey mast
    whose grey a tower on the frame also has reads as background, although no edge
    separates it from the upper half found as subject; the white inside wall of a cup
    reads as a hole. A surface (pixels whose steps to all four neighbours are under
    ``surface_step``; the pixels between surfaces are edges) that is at least
    ``surface_min_share`` subject and does not touch the frame is one thing with the
    subject. A surface reaching the frame is left as it was: the background is such a
    surface. A surface adding more than ``surface_max_growth`` x the subject is left too:
    a soft transition (defocus) can join the subject to a large neighbour, a plate under
    a cake, that is not part of it."""
    if not found.any():
        return found
    surfaces, count = ndimage.label(smooth_pixels(lab, params.surface_step))
    if count == 0:
        return found
    size = np.bincount(surfaces.ravel(), minlength=count + 1)
    covered = np.bincount(surfaces[found], minlength=count + 1)
    frame = _along_frame(surfaces)
    completes = (covered >= params.surface_min_share * size) & (covered < size)
    completes &= size - covered <= params.surface_max_growth * int(found.sum())
    completes[frame] = False
    completes[0] = False  # the edge pixels between surfaces
    added = completes[surfaces] & ~found
    if not added.any():
        return found
    # the edge pixels along what was added go to whichever side they are more like
    grown = found | added | (ndimage.binary_dilation(added) & (surfaces == 0))
    return refine_outline(lab, grown, params.outline_band_px)


@dataclass(frozen=True)
class _Seeded:
    """GrabCut's subject and the colour model that seeded it."""

    found: np.ndarray  # (h, w) bool: GrabCut's subject, outline refined
    probable_fg: np.ndarray  # (h, w) bool: what the colour model alone calls subject
    looks_background: np.ndarray  # (h, w) bool
    nearest: np.ndarray  # (h, w) int: 0 the colour surface, i + 1 frame colour i
    frame: np.ndarray  # (h, w) bool
    colours: int  # how many frame colours the model has

    @property
    def agreement(self) -> float:
        """Share of GrabCut's subject that the colour model also calls subject."""
        return float((self.found & self.probable_fg).sum() / max(int(self.found.sum()), 1))

    def subject_colours(self, ratio: float) -> np.ndarray:
        """(k,) bool per frame colour: it explains ``ratio`` x more of the found subject
        (as the nearest background colour of a pixel that looks like background) than
        of the frame."""
        counted = self.looks_background
        models = 1 + self.colours
        frame_share = np.bincount(self.nearest[counted & self.frame], minlength=models)
        found_share = np.bincount(self.nearest[counted & self.found], minlength=models)
        frame_share = frame_share[1:] / max(int(self.frame.sum()), 1)
        found_share = found_share[1:] / max(int(self.found.sum()), 1)
        return found_share >= ratio * np.maximum(frame_share, 1e-9)


def _seeded_grabcut(
    rgb: np.ndarray,
    lab: np.ndarray,
    frame: np.ndarray,
    colours: np.ndarray,
    *,
    params: SubjectParams,
    box: np.ndarray | None,
) -> _Seeded:
    distances = _background_distances(lab, frame, colours)
    distance = distances.min(axis=0)
    spread = float(np.median(distance[frame]))  # the frame's own colour noise
    threshold = max(params.background_distance, params.noise_factor * spread)
    looks_background = distance < threshold
    # frame pixels far from the model belong to a subject that touches the frame
    frame_subject = frame & (distance >= 2.0 * threshold)
    certain_background = frame & ~frame_subject
    if box is not None:
        certain_background |= ~box
    probable_fg = ~looks_background & ~certain_background
    if probable_fg.mean() < params.min_subject_fraction:
        raise NoSubject(
            f"We could not find a subject in this picture. {CUSTOMER_ADVICE}",
            reason="the picture is (nearly) uniform",
            subject_fraction=round(float(probable_fg.mean()), 5),
        )
    gc = np.where(looks_background, cv2.GC_PR_BGD, cv2.GC_PR_FGD).astype(np.uint8)
    gc[certain_background] = cv2.GC_BGD
    found = refine_outline(lab, _grabcut(rgb, gc, params), params.outline_band_px)
    nearest = np.argmin(distances, axis=0)
    return _Seeded(found, probable_fg, looks_background, nearest, frame, len(colours))


def _grabcut(rgb: np.ndarray, seeds: np.ndarray, params: SubjectParams) -> np.ndarray:
    """OpenCV's GrabCut from ``seeds`` (GC_* labels, changed in place): (h, w) bool
    subject. Seeded with ``rng_seed``: its GMM initialisation draws from OpenCV's RNG."""
    bgd_model = np.zeros((1, 65), np.float64)
    fgd_model = np.zeros((1, 65), np.float64)
    cv2.setRNGSeed(params.rng_seed)
    cv2.grabCut(
        np.ascontiguousarray(rgb[..., ::-1]),
        seeds,
        None,
        bgd_model,
        fgd_model,
        params.grabcut_iterations,
        cv2.GC_INIT_WITH_MASK,
    )
    return (seeds == cv2.GC_FGD) | (seeds == cv2.GC_PR_FGD)


def refine_outline(lab: np.ndarray, mask: np.ndarray, band_px: int) -> np.ndarray:
    """Put the outline where a pixel is at least half subject: GrabCut's cut runs between
    pixels and takes the blended ones (anti-aliasing, blur) to one side, which on a
    subject a few pixels wide is a large error. Within ``band_px`` of the outline each
    pixel's colour is compared with the local subject and background colours (box means
    of the pixels well inside and well outside): the share of the way from background to
    subject is its coverage, as in a two-colour matting model."""
    if band_px <= 0 or not mask.any() or mask.all():
        return mask
    inner = ndimage.binary_erosion(mask, iterations=band_px)
    outer = ~ndimage.binary_dilation(mask, iterations=band_px)
    band = ~inner & ~outer
    fg, has_fg = _local_mean(lab, inner, band_px)
    bg, has_bg = _local_mean(lab, outer, band_px)
    step = fg - bg
    contrast = np.einsum("ijk,ijk->ij", step, step)
    coverage = np.einsum("ijk,ijk->ij", lab - bg, step) / np.maximum(contrast, 1e-6)
    decided = band & has_fg & has_bg & (contrast >= _MIN_MATTING_CONTRAST**2)
    out = mask.copy()
    out[decided] = coverage[decided] >= 0.5
    return out


def _local_mean(lab: np.ndarray, where: np.ndarray, band_px: int) -> tuple[np.ndarray, np.ndarray]:
    """Per pixel, the mean colour of the ``where`` pixels in a window reaching ``2 x band_px``
    around it, and whether the window holds any."""
    window = (4 * band_px + 1, 4 * band_px + 1)
    weight = cv2.boxFilter(where.astype(np.float32), -1, window, normalize=False)
    total = cv2.boxFilter(lab * where[..., None], -1, window, normalize=False)
    return total / np.maximum(weight, 1e-6)[..., None], weight > 0


def _background_distances(lab: np.ndarray, frame: np.ndarray, colours: np.ndarray) -> np.ndarray:
    """(1 + k, h, w) Lab distances to the background's models: a smooth colour surface
    fitted to the frame (gradients, vignetting), then each of the frame's main colours."""
    surface = _fit_surface(lab, frame)
    distances = [np.linalg.norm(lab - surface, axis=-1)]
    distances += [np.linalg.norm(lab - centre, axis=-1) for centre in colours]
    return np.stack(distances).astype(np.float32)


def _fit_surface(lab: np.ndarray, frame: np.ndarray, rounds: int = 3) -> np.ndarray:
    """Quadratic colour surface in (x, y) fitted to the frame pixels by least squares,
    refitted without the worst quarter (subject pixels on the frame) a few times."""
    h, w = lab.shape[:2]
    yy, xx = np.mgrid[0:h, 0:w]
    x, y = xx / max(w - 1, 1) - 0.5, yy / max(h - 1, 1) - 0.5
    basis = np.stack([np.ones_like(x), x, y, x * x, x * y, y * y], axis=-1)
    a, values = basis[frame], lab[frame].astype(np.float64)
    keep = np.ones(len(a), dtype=bool)
    coeffs = np.zeros((basis.shape[-1], 3))
    for _ in range(rounds):
        coeffs, *_ = np.linalg.lstsq(a[keep], values[keep], rcond=None)
        residual = np.linalg.norm(a @ coeffs - values, axis=1)
        keep = residual <= np.quantile(residual, 0.75)
    return (basis @ coeffs).astype(np.float32)


def _frame_colours(samples: np.ndarray, params: SubjectParams) -> np.ndarray:
    """A few Lab colours summarising the frame (k-means, seeded; exact for flat frames),
    without the colours that hold too few frame pixels to be background."""
    rounded = np.unique(np.round(samples, 1), axis=0)
    if len(rounded) <= params.border_clusters:
        return rounded.astype(np.float32)
    centres, labels = kmeans2(
        samples.astype(np.float64),
        params.border_clusters,
        seed=np.random.default_rng(params.rng_seed),
        minit="++",
    )
    share = np.bincount(labels, minlength=len(centres)) / len(samples)
    return centres[share >= params.min_frame_colour_share].astype(np.float32)


# --- cleaning: every part kept, joined, holes filled --------------------------------------


def clean_mask(mask: np.ndarray, params: SubjectParams, *, reference_size: int) -> np.ndarray:
    """Every part of the subject, joined into one piece, small holes filled, outline
    smoothed. Pixel sizes scale with ``reference_size`` (the longest side params assume)."""
    return join_parts(kept_parts(mask, params, reference_size=reference_size), params)


def kept_parts(
    mask: np.ndarray, params: SubjectParams, *, reference_size: int, photo: bool = False
) -> np.ndarray:
    """:func:`clean_mask` before its parts are joined. ``photo``: the mask was found in a
    photo's colours, so a thin strand joining it to the frame may be background
    (:func:`cut_frame_strands`)."""
    if not mask.any():
        return mask
    px = max(mask.shape) / reference_size
    if photo:
        mask = cut_frame_strands(mask, params, radius_px=max(1, round(params.strand_px * px)))
    mask = _smooth_outline(mask, params.outline_sigma_px * px)
    mask = subject_parts(mask, params)
    mask = _fill_small_holes(mask, params.fill_hole_fraction)
    mask = _smooth_outline(mask, params.outline_sigma_px * px)
    return subject_parts(mask, params)


def cut_frame_strands(mask: np.ndarray, params: SubjectParams, *, radius_px: int) -> np.ndarray:
    """``mask`` without the background things joined to the subject by a thin strand (the
    rim of a plate cut by the picture's edge touching a letter): the mask is opened by
    ``radius_px``, its parts are chosen by :func:`subject_parts` (which leaves out parts
    cut by the frame when the subject is not), and, when the subject is not cut by the
    frame, a strand the opening removed is kept only where it touches neither the frame
    nor a part left out. Strands within the subject (a thin leg, an antenna) stay."""
    frame = np.zeros(mask.shape, dtype=bool)
    frame[0] = frame[-1] = True
    frame[:, 0] = frame[:, -1] = True
    if not (mask & frame).any():
        return mask  # nothing is cut by the frame
    size = 2 * radius_px + 1
    opened = cv2.morphologyEx(  # outside the picture is background, as in scipy's opening
        mask.astype(np.uint8),
        cv2.MORPH_OPEN,
        np.ones((size, size), np.uint8),
        borderType=cv2.BORDER_CONSTANT,
        borderValue=0,
    ).astype(bool)
    if not opened.any():
        return mask
    kept = subject_parts(opened, params)
    left_out = opened & ~kept
    if (kept & frame).any():
        return mask & ~left_out  # the subject is cut by the frame: so may its strands be
    strands, count = ndimage.label(mask & ~opened, structure=np.ones((3, 3)))
    if count == 0:
        return mask & ~left_out
    touching = ndimage.binary_dilation(left_out, structure=np.ones((3, 3))) | frame
    dropped = np.unique(strands[touching & (strands > 0)])
    return mask & ~left_out & ~np.isin(strands, dropped[dropped > 0])


def subject_parts(mask: np.ndarray, params: SubjectParams) -> np.ndarray:
    """The largest part and every part near it that is not a speck, nearest first.

    Near: the gap is at most ``max_part_gap`` x the smaller of the two sizes (letters are
    spaced by about their own width; a crumb far from the subject is not a part). A part
    cut by the picture's frame, or nearer to it than to the subject, joins only when the
    largest part is cut by the frame too: otherwise it is the edge of something in the
    background (a plate, a shadow).
    """
    labels, count = ndimage.label(mask)
    if count <= 1:
        return mask
    sizes = np.bincount(labels.ravel())
    sizes[0] = 0
    largest = int(np.argmax(sizes))
    frame_labels = set(np.unique(_along_frame(labels)))
    candidates = {int(i) for i in np.flatnonzero(sizes >= params.min_part_fraction * sizes.max())}
    candidates.discard(largest)
    if largest not in frame_labels:
        candidates -= frame_labels
        h, w = mask.shape
        rows, cols = np.mgrid[0:h, 0:w]
        to_frame = np.minimum(np.minimum(rows, h - 1 - rows), np.minimum(cols, w - 1 - cols))
        near_frame = {i: int(to_frame[labels == i].min()) for i in candidates}
    else:
        near_frame = {}
    boxes = ndimage.find_objects(labels)
    part_sizes = {
        i: max(b[0].stop - b[0].start, b[1].stop - b[1].start)
        for i, b in enumerate(boxes, start=1)
        if b is not None
    }
    kept = labels == largest
    while candidates:
        gap = ndimage.distance_transform_edt(~kept)
        rows, cols = np.nonzero(kept)
        kept_size = max(rows.max() - rows.min(), cols.max() - cols.min()) + 1
        reach = {
            i: float(gap[labels == i].min()) / min(kept_size, part_sizes[i]) for i in candidates
        }
        nearest = min(candidates, key=lambda i: (reach[i], i))
        if reach[nearest] > params.max_part_gap:
            break
        candidates.discard(nearest)
        gap_to_subject = float(gap[labels == nearest].min())
        if nearest in near_frame and near_frame[nearest] < gap_to_subject:
            continue  # nearer the frame than the subject: the edge of the background
        kept |= labels == nearest
    return kept


def join_parts(mask: np.ndarray, params: SubjectParams) -> np.ndarray:
    """Join separate parts with straight bridges along a minimum spanning tree of their
    shortest gaps, so the subject is one piece."""
    labels, count = ndimage.label(mask)
    if count <= 1:
        return mask
    gaps = np.full((count, count), np.inf)
    ends: dict[tuple[int, int], tuple[np.ndarray, np.ndarray]] = {}
    for i in range(1, count + 1):
        dist, (iy, ix) = ndimage.distance_transform_edt(labels != i, return_indices=True)
        for j in range(i + 1, count + 1):
            where = np.flatnonzero((labels == j).ravel())
            k = where[int(np.argmin(dist.ravel()[where]))]
            y, x = divmod(int(k), mask.shape[1])
            gaps[i - 1, j - 1] = dist[y, x]
            ends[(i - 1, j - 1)] = (np.array([y, x]), np.array([iy[y, x], ix[y, x]]))
    tree = minimum_spanning_tree(np.where(np.isfinite(gaps), gaps + 1e-9, 0)).tocoo()
    width = max(1, round(params.bridge_width * max(mask.shape)))
    canvas = mask.astype(np.uint8)
    for i, j in zip(tree.row, tree.col, strict=True):
        a, b = ends[(min(i, j), max(i, j))]
        cv2.line(canvas, (int(a[1]), int(a[0])), (int(b[1]), int(b[0])), 1, width)
    return canvas.astype(bool)


def _smooth_outline(mask: np.ndarray, sigma: float) -> np.ndarray:
    if sigma <= 0:
        return mask
    return ndimage.gaussian_filter(mask.astype(np.float32), sigma) >= 0.5


def _fill_small_holes(mask: np.ndarray, max_fraction: float) -> np.ndarray:
    filled = ndimage.binary_fill_holes(mask)
    holes, count = ndimage.label(filled & ~mask)
    if count == 0:
        return mask
    sizes = np.bincount(holes.ravel())
    small = sizes <= max_fraction * filled.sum()
    small[0] = False
    return mask | small[holes]


# --- small helpers ------------------------------------------------------------------------


def _box_mask(box: tuple[float, float, float, float], h: int, w: int) -> np.ndarray:
    left, top, right, bottom = box
    out = np.zeros((h, w), dtype=bool)
    out[
        int(np.floor(top * h)) : int(np.ceil(bottom * h)),
        int(np.floor(left * w)) : int(np.ceil(right * w)),
    ] = True
    return out


def _scaled_shape(h: int, w: int, scale: float) -> tuple[int, int]:
    return (max(1, round(h * scale)), max(1, round(w * scale)))


def _resize_mask(mask: np.ndarray, shape: tuple[int, int]) -> np.ndarray:
    if mask.shape == shape:
        return mask.astype(bool)
    resized = cv2.resize(
        mask.astype(np.float32), (shape[1], shape[0]), interpolation=cv2.INTER_AREA
    )
    return resized >= 0.5


def _resize(array: np.ndarray, scale: float, interpolation: int) -> np.ndarray:
    if scale == 1.0:
        return array
    h, w = array.shape[:2]
    size = (max(1, round(w * scale)), max(1, round(h * scale)))
    return cv2.resize(np.ascontiguousarray(array), size, interpolation=interpolation)


def to_lab(rgb: np.ndarray) -> np.ndarray:
    """CIE Lab in float32 (L 0-100, a/b around 0) from sRGB uint8."""
    lab = cv2.cvtColor(rgb.astype(np.float32) / 255.0, cv2.COLOR_RGB2LAB)
    return lab.astype(np.float32)
