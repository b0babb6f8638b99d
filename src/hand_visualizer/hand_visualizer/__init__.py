"""hand_visualizer: URDF hand, RViz markers and TF for the estimated hand pose."""
