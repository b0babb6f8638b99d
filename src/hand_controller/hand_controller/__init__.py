"""hand_controller: retargets the human hand pose to a robot or prosthetic hand, safely."""
