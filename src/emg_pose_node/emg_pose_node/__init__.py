"""emg_pose_node: hand model, EMG-to-pose network, training and the live pose node."""
