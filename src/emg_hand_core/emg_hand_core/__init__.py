"""emg_hand_core: the torch-free ground floor of emg_hand (no rclpy, no torch).

* :mod:`.hand_model` - joint and keypoint names, bone lengths, limits, forward and inverse
  kinematics (numpy); :mod:`.poses` - the named poses;
* :mod:`.names` - JointState-like (names, values) into the 20 joints' order;
* :mod:`.tracks` - a pose track resampled onto EMG sample times;
* :mod:`.emg_codec` - chunks of samples <-> ``emg_interfaces/msg/EMG`` (rclpy and rosbags);
* :mod:`.recordings` - the Recording type and one reader per file format;
* :mod:`.bag_types` - message definitions for reading/writing bags without ROS;
* :mod:`.topics` - the graph's topic names; :mod:`.hand_plot` - drawing the hand.
"""
