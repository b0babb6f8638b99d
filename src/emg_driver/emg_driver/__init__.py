"""emg_driver: serial, simulated and replayed sEMG armbands publishing emg/raw."""
