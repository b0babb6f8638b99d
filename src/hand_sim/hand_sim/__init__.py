"""hand_sim: the controller's robot hands simulated in MuJoCo, as a real hand would answer.

Pure core (no rclpy): :mod:`hand_sim.model` builds a MuJoCo model from a profile's URDF,
:mod:`hand_sim.sim` steps it and reads joint states and contacts, :mod:`hand_sim.render`
draws it offscreen. :mod:`hand_sim.sim_node` is the ROS node. Importing this package does
not import MuJoCo; :mod:`hand_sim.mj` does, once, with ``MUJOCO_GL=egl``.
"""
