"""emg_hand_testing: test helpers for emg_hand (ROS domain isolation, waits, collectors)."""
