"""Byte-level emulators of real armbands on pseudo-terminals, written from the public
protocols (tests, benchmarks, and trying the driver without hardware): :mod:`.cyton`
(OpenBCI Cyton / Cyton + Daisy), :mod:`.myo_dongle` (a BLED112 dongle with a Myo in range).
"""
