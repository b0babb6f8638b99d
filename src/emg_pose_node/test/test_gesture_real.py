"""Gesture data and models on the real recordings of ../shared/data (skipped without them):
myo_readings labels (with the published malformed line skipped and counted), the prompted
BrainFlow run's finger patterns as classes, and the cross-session protocol with LDA."""

from __future__ import annotations

import numpy as np

from emg_pose_node.gesture.data import gesture_labels, load_session, make_windows
from emg_pose_node.gesture.evaluation import evaluate_gesture
from emg_pose_node.gesture.training import PRESETS, GestureTrainSettings, train_gesture
from emg_pose_node.preprocessing import PreprocessConfig

MYO = ("myo_readings", "right_hand")


def test_myo_session_labels_and_the_merged_line(shared_data):
    session = load_session(shared_data.joinpath(*MYO, "19999-2"))
    assert len(session.recordings) == 8 and 470 < session.duration_s < 520  # ~8 x 60 s
    notes = session.notes()
    assert len(notes) == 1 and notes[0].startswith("2.txt: 1 line did not parse")
    rec = next(r for r in session.recordings if r.source.endswith("2.txt"))
    labels, names = gesture_labels(rec)
    assert names[2] == "wrist_extension" and set(np.unique(labels)) == {-1, 0, 2}
    assert np.sum(labels == -1) == 1 and not rec.emg_valid[labels == -1].any()
    pre = PreprocessConfig(200.0, channel_names=rec.channel_names)
    w = make_windows([rec], 40, 10, names, pre)
    bad = int(np.flatnonzero(labels == -1)[0])
    assert not np.any((w.end >= bad) & (w.end - 39 <= bad))  # no window over the lost sample
    assert len(w) == len(range(39, rec.num_samples, 10)) - 4  # the four windows it spans


def test_prompted_finger_patterns_are_classes(shared_data):
    session = load_session(shared_data / "eeg_emg_hands" / "s_04_29_25" / "r_1")
    rec = session.recordings[0]
    labels, names = gesture_labels(rec)
    assert len(names) >= 2 and all(n == "none" or set(n.split("+")) <= {
        "thumb", "index", "middle", "ring", "pinky"} for n in names)
    assert np.mean(labels >= 0) > 0.5
    k = int(labels[labels >= 0][0])
    first = np.flatnonzero(labels == k)[0]
    fingers = [f for f, v in zip(rec.value_names, rec.values[first]) if v > 0.5]
    assert names[k] == ("+".join(fingers) or "none")


def test_cross_session_lda_baseline_and_the_rotation_search(shared_data):
    root = shared_data.joinpath(*MYO)
    accuracy = {}
    for p in ("10000", "12548"):
        train = [load_session(root / f"{p}-1"), load_session(root / f"{p}-2")]
        test = [load_session(root / f"{p}-3")]
        for preset in ("lda_td", "lda_logtd"):
            ckpt = train_gesture(train, GestureTrainSettings(**PRESETS[preset])).checkpoint
            result = evaluate_gesture(ckpt, test, latency_repeats=5)
            accuracy[p, preset] = result["accuracy"]
            if preset == "lda_logtd":
                shifts = result["ring_shifts"][f"{p}-3"]
                assert max(shifts, key=shifts.get) == (-1 if p == "12548" else 0)
    assert accuracy["10000", "lda_td"] > 0.85  # the field's baseline on a typical wearer
    # 12548's band turned one electrode between sessions 2 and 3: undone, unlabelled
    assert accuracy["12548", "lda_td"] < 0.65 and accuracy["12548", "lda_logtd"] > 0.8
