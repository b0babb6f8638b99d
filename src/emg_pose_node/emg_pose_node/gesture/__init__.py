"""Gesture recognition (pattern-recognition control): features, models, training, evaluation,
post-processing and the streaming classifier behind the ``emg_gesture`` node. No rclpy.

Modules: :mod:`.features` (numpy features and named sets), :mod:`.data` (labels, sessions,
windows), :mod:`.alignment` (armband rotation from unlabelled EMG), :mod:`.lda` (the
baseline), :mod:`.networks` (CNN-LSTM, LSTM-FIN), :mod:`.checkpoint` (one format),
:mod:`.classifier` (inference, streaming), :mod:`.training` (training, calibration),
:mod:`.evaluation` (metrics, reports), :mod:`.postprocess` (rejection, voting, proportional
level, posture), :mod:`.cli` (``emg_gesture_train``, ``emg_gesture_eval``).
"""
