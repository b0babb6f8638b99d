"""Bring-up of the emg_hand graph and emg_hand_bag (rosbag2 record / play / info)."""
