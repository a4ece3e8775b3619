"""The SFace card's threshold and calibration figures, measured by the project on its development sets.

Why a module of its own: the figures are data produced by ``lfr eval`` runs (the command is in each record),
kept apart from the build recipe so a re-measurement changes one file; the build writes them into the card.

Threshold choice: 0.46 is where the open-set CFP run (334 enrolled people, one photo each, 2,324 searches of
166 people not enrolled) reaches FPIR 0.001 (0.42: FPIR 0.01, the floor below which a reason is needed).
A deployment created without a threshold gets a stricter one for its watchlist's size from the ``fmr@T``
figures (lfr.watchlist.expected_rate.threshold_for_target). All figures: YuNet boxes with MTCNN O-Net
landmarks (the default detector), ArcFace 112 px chips, one ONNX Runtime thread.
"""

from __future__ import annotations

from lfr.vision.cards import Calibration

SFACE_THRESHOLD = 0.46
SFACE_THRESHOLD_FLOOR = 0.42

_DETECTION = (
    "YuNet (min face 40 px, score 0.6, frames shrunk so 40 px faces are 20 px) with MTCNN O-Net landmarks, "
    "ArcFace 112 px chip; the photo's most likely face (lfr.vision.face_choice)"
)
_LFW_PREP = (
    "350x350 grey tight crops replicated to 3 channels, padded by 50% of the image size on each side; "
    + _DETECTION
)

SFACE_CALIBRATION: tuple[Calibration, ...] = (
    Calibration(
        name="cfp_open_set",
        dataset="cfp: Celebrities in Frontal-Profile, 500 people x 14 colour photos (10 frontal, 4 profile)",
        pairs="FMR: all 24,444,014 pairs of photos of different people; FMR per person passing: 10,075 "
        "simulated passages (each person's photos that pass the quality gate cut into tracks of 3, 5 draws, "
        "searched as the live embedder fuses them) against every other person's photos that pass it, as "
        "mirrored templates: 53,642,405 comparisons; TPIR: lfr "
        "eval identify seed 0 (334 people enrolled with one random photo as a mirrored template, 4,342 mated "
        "searches, rank 1); TPIR per person: lfr eval tracks' live rule on the same split, tracks of 3 "
        "probes, 5 draws",
        preprocessing="photos shrunk to at most 1600 px; " + _DETECTION,
        figures={
            "impostor_pairs": 24444014.0,
            "fmr@0.36": 0.0003473,
            "fmr@0.38": 0.0001713,
            "fmr@0.4": 8.243e-05,
            "fmr@0.42": 3.882e-05,
            "fmr@0.44": 1.763e-05,
            "fmr@0.46": 8.673e-06,
            "fmr@0.48": 4.132e-06,
            "fmr@0.5": 2.536e-06,
            "fmr@0.52": 1.473e-06,
            "fmr@0.54": 8.591e-07,
            "fmr@0.56": 5.727e-07,
            "fmr@0.58": 2.864e-07,
            "fmr@0.6": 2.455e-07,
            "person_searches": 3.0,
            "person_impostor_comparisons": 53642405.0,
            "fmr_person@0.36": 0.0008181,
            "fmr_person@0.38": 0.0004023,
            "fmr_person@0.4": 0.0001919,
            "fmr_person@0.42": 8.866e-05,
            "fmr_person@0.44": 3.786e-05,
            "fmr_person@0.46": 1.592e-05,
            "fmr_person@0.48": 6.525e-06,
            "fmr_person@0.5": 2.591e-06,
            "fmr_person@0.52": 1.044e-06,
            "fmr_person@0.54": 4.66e-07,
            "fmr_person@0.56": 4.288e-07,
            "fmr_person@0.58": 1.864e-07,
            "fmr_person@0.6": 1.491e-07,
            "tpir@0.36": 0.8459,
            "tpir@0.38": 0.825,
            "tpir@0.4": 0.7964,
            "tpir@0.42": 0.7688,
            "tpir@0.44": 0.7303,
            "tpir@0.46": 0.6948,
            "tpir@0.48": 0.6522,
            "tpir@0.5": 0.6073,
            "tpir@0.52": 0.5613,
            "tpir@0.54": 0.521,
            "tpir@0.56": 0.4853,
            "tpir@0.58": 0.441,
            "tpir@0.6": 0.3968,
            "tpir@0.62": 0.3547,
            "tpir@0.64": 0.3054,
            "tpir@0.66": 0.2683,
            "tpir@0.68": 0.2287,
            "tpir@0.7": 0.1882,
            "tpir_person@0.36": 0.9375,
            "tpir_person@0.38": 0.9277,
            "tpir_person@0.4": 0.9119,
            "tpir_person@0.42": 0.8965,
            "tpir_person@0.44": 0.8764,
            "tpir_person@0.46": 0.8595,
            "tpir_person@0.48": 0.8371,
            "tpir_person@0.5": 0.8108,
            "tpir_person@0.52": 0.7826,
            "tpir_person@0.54": 0.7517,
            "tpir_person@0.56": 0.7218,
            "tpir_person@0.58": 0.6853,
            "tpir_person@0.6": 0.6443,
            "tpir_person@0.62": 0.6035,
            "tpir_person@0.64": 0.5605,
            "tpir_person@0.66": 0.5133,
            "tpir_person@0.68": 0.4642,
            "tpir_person@0.7": 0.4089,
            "rank1": 0.8934,
            "fnir_at_fpir_0.01": 0.2278,
            "fnir_at_fpir_0.001": 0.3022,
        },
        notes="lfr eval calibrate --root cfp/images --cache DIR --thresholds 0.36,0.38,...,0.70 (a threshold "
        "is listed when at least 5 impostor pairs, or passage comparisons, pass it). fmr_person@T is per "
        "(passage, watchlist photo) comparison for a person searched up to person_searches times: the "
        "watchlist-size rule states rates per person passing from it, never below the rate per search "
        "(lfr.watchlist.expected_rate). Pairs of all poses: frontal-to-frontal pairs "
        "match falsely less often, so the rates are conservative for frontal watchlist photos (and for "
        "mirrored templates: 5.5e-6 at 0.46 between photos that pass the quality gate, by_gate). The TPIR is "
        "per search of one photo; per person passing (several crops fused) it is higher (docs/accuracy.md).",
    ),
    Calibration(
        name="lfw_dev_full",
        dataset="lfw_pairs_dev: LFW View-2 folds 1-2 (551 genuine + 564 impostor pairs, images present)",
        pairs="all 1115 pairs",
        preprocessing=_LFW_PREP,
        figures={
            "accuracy": 0.957,
            "tar": 0.9129,
            "far": 0.0,
            "pairs": 1115.0,
            "accuracy_floor": 0.94,
        },
        notes="at the card threshold 0.46, chosen for open-set colour photos: strict for 1:1 on grey crops. "
        "FAR 0 of 564 impostor pairs is not used as a false-match rate (its rule-of-three bound, 5e-3, says "
        "less than cfp_open_set's 24 million pairs); with every LFW dev impostor pair (lfr eval verify "
        "--all-impostors, 1,111,996 pairs) FAR at 0.46 is 4.5e-6 and TAR at FAR 1e-3 is 0.980",
    ),
    Calibration(
        name="lfw_dev_every5",
        dataset="lfw_pairs_dev",
        pairs="every 5th row of pairs.csv (223 pairs; the default test run)",
        preprocessing=_LFW_PREP,
        figures={"accuracy": 0.9462, "tar": 0.8919, "far": 0.0, "pairs": 223.0, "accuracy_floor": 0.93},
    ),
    Calibration(
        name="deepface",
        dataset="deepface_testset: serengil/deepface unit-test photos, 13 identities, 61 colour photos",
        pairs="all 520 labelled pairs",
        preprocessing="photos shrunk to at most 1600 px on the longer side (INTER_AREA); " + _DETECTION,
        figures={"accuracy": 1.0, "tar": 1.0, "far": 0.0, "pairs": 520.0, "accuracy_floor": 0.985},
    ),
)
