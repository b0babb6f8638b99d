"""A simulated forearm sEMG armband wearing a moving hand (pure numpy + scipy; no rclpy).

The simulator is the default source of the driver and the generator of the project's
training data, so it is built to be realistic where it matters for learning a pose decoder:

1. **Motion** (:class:`MotionGenerator`): a seeded, repeatable sequence of segments. Each
   segment moves from the current hand pose to a target with a minimum-jerk profile, then
   holds it. Targets cycle through the named poses of :mod:`emg_hand_core.poses` (rest,
   open, fist, pinch, point, individual fingers ...) in a shuffled order, sometimes blended
   with another pose and jittered per joint (always inside the hand's joint limits). A
   latent wrist state (flexion/extension, radial/ulnar deviation) moves with some segments:
   it produces EMG but no joint angles, as in a real forearm. A per-segment effort level
   (grip force) scales the activations slightly.
2. **Muscles** (:data:`MUSCLES`): fourteen extrinsic forearm muscles and compartments at their
   angle around the forearm. Holding a finger flexed beyond its relaxed posture needs
   flexor activity (an FDS belly per finger, FDP, FPL for the thumb); holding it extended needs
   extensor activity (EDC groups, EPL/APL); moving adds a velocity term to the agonist;
   gripping co-activates the wrist extensors. Activations pass through first-order
   activation dynamics (tau 30 ms).
3. **Electrodes**: ``C`` electrodes evenly spaced around the forearm, channel 1 over the
   dorsal midline. Each muscle reaches each electrode with a von Mises weight of their
   angular distance (superficial muscles focal, deep ones broad). ``electrode_shift`` (in
   electrode spacings) rotates the armband, as when it is put on again or by another
   wearer; per-channel gains model skin contact; neighbouring electrodes cross-talk.
4. **Signal**: each muscle drives an independent band-limited (20-450 Hz, below Nyquist)
   Gaussian carrier whose amplitude follows its activation, so the windowed RMS of each
   channel (~100 ms) encodes the activation pattern, hence the pose. White baseline noise
   and optional 50/60 Hz line interference are added. Output in volts.

API::

    sim = ArmbandSimulator(SimConfig(sample_rate_hz=500, num_channels=8), seed=0)
    emg, q = sim.generate(500)   # (500, 8) float32 [V], (500, 20) float32 [rad]
    emg2, q2 = sim.generate(250) # continues seamlessly

Splitting a run into calls of any sizes gives the same samples as one call.
"""

from __future__ import annotations

import math
from dataclasses import asdict, dataclass, field

import numpy as np

from emg_hand_core.hand_model import JOINT_INDEX, JOINT_LOWER, JOINT_NAMES, JOINT_UPPER
from emg_hand_core.poses import NAMED_POSES, REST
from emg_hand_core.recordings import default_channel_names

NUM_JOINTS = len(JOINT_NAMES)

# --- muscles --------------------------------------------------------------------------


@dataclass(frozen=True)
class Muscle:
    """A forearm muscle (or compartment) as the armband sees it.

    angle_rad: position around the forearm, 0 = dorsal midline, +pi/2 = radial (thumb)
    side, pi = volar midline, -pi/2 = ulnar side. focus: von Mises concentration of its
    field at the skin (superficial = focal = large). gain: amplitude at full activation
    under the nearest electrode, relative to 1.
    """

    name: str
    angle_rad: float
    focus: float
    gain: float


MUSCLES: tuple[Muscle, ...] = (
    # flexor digitorum superficialis: one belly per finger (middle/ring superficial)
    Muscle("fds_index", 2.45, 3.0, 0.85),
    Muscle("fds_middle", 2.85, 4.0, 1.00),
    Muscle("fds_ring", -3.00, 4.0, 1.00),
    Muscle("fds_pinky", -2.60, 3.0, 0.80),
    # flexor digitorum profundus: independent index part, common ulnar part (deep, broad)
    Muscle("fdp_index", 2.60, 1.8, 0.55),
    Muscle("fdp_ulnar", -2.40, 1.8, 0.60),
    Muscle("fpl", 2.05, 2.2, 0.60),  # flexor pollicis longus (deep)
    Muscle("edc_index_middle", 0.20, 4.5, 1.00),  # extensor digitorum (+ indicis)
    Muscle("edc_ring_pinky", -0.35, 4.5, 0.90),  # extensor digitorum (+ digiti minimi)
    Muscle("epl_apl", 0.80, 3.0, 0.70),  # thumb extensors / long abductor
    Muscle("fcr", 2.20, 4.0, 0.90),  # flexor carpi radialis
    Muscle("fcu", -2.00, 4.0, 0.90),  # flexor carpi ulnaris
    Muscle("ecr", 1.25, 3.5, 0.95),  # extensor carpi radialis longus/brevis
    Muscle("ecu", -1.15, 4.0, 0.90),  # extensor carpi ulnaris
)
MUSCLE_NAMES: tuple[str, ...] = tuple(m.name for m in MUSCLES)
MUSCLE_INDEX = {m.name: i for i, m in enumerate(MUSCLES)}
FLEXOR_MUSCLES = ("fds_index", "fds_middle", "fds_ring", "fds_pinky", "fdp_index", "fdp_ulnar",
                  "fpl", "fcr", "fcu")
EXTENSOR_MUSCLES = ("edc_index_middle", "edc_ring_pinky", "epl_apl", "ecr", "ecu")

WRIST_MOVES: dict[str, tuple[float, float]] = {
    # (flexion(+)/extension(-), radial(+)/ulnar(-) deviation), normalised to [-1, 1]
    "neutral": (0.0, 0.0),
    "wrist_flexion": (1.0, 0.0),
    "wrist_extension": (-1.0, 0.0),
    "radial_deviation": (0.0, 1.0),
    "ulnar_deviation": (0.0, -1.0),
}


# --- configuration --------------------------------------------------------------------


@dataclass(frozen=True)
class WearerConfig:
    """What differs between wearers and donnings of the armband.

    electrode_shift: rotation of the armband around the forearm [electrode spacings];
    +1 moves every electrode to where its neighbour was. channel_gains: per-channel
    electrode-skin gain (None = all 1; length must equal the channel count).
    amplitude_scale: overall signal amplitude (subcutaneous fat, muscle size).
    crosstalk: fraction of each channel's signal that leaks into each neighbour.
    """

    electrode_shift: float = 0.0
    channel_gains: tuple[float, ...] | None = None
    amplitude_scale: float = 1.0
    crosstalk: float = 0.08

    def validate(self, num_channels: int) -> None:
        if not math.isfinite(self.electrode_shift):
            raise ValueError("electrode_shift must be finite")
        if self.channel_gains is not None:
            gains = np.asarray(self.channel_gains, dtype=np.float64)
            if gains.shape != (num_channels,):
                raise ValueError(f"channel_gains has {gains.size} values, expected one per "
                                 f"channel ({num_channels})")
            if not np.all(np.isfinite(gains)) or np.any(gains <= 0):
                raise ValueError("channel_gains must be finite and > 0")
        if not (math.isfinite(self.amplitude_scale) and self.amplitude_scale > 0):
            raise ValueError("amplitude_scale must be finite and > 0")
        if not 0.0 <= self.crosstalk < 0.5:
            raise ValueError("crosstalk must be in [0, 0.5)")


WEARER_A = WearerConfig()
"""The default wearer: armband centred, equal gains."""


def wearer_b(num_channels: int = 8) -> WearerConfig:
    """A second wearer: armband rotated by 0.6 electrode spacings, uneven electrode gains,
    10 % weaker signals. Deterministic for a given channel count."""
    rng = np.random.default_rng(20240611)
    gains = np.exp(rng.normal(0.0, 0.25, num_channels))
    return WearerConfig(electrode_shift=0.6, channel_gains=tuple(float(g) for g in gains),
                        amplitude_scale=0.9, crosstalk=0.10)


@dataclass(frozen=True)
class MotionConfig:
    """The motion the simulated hand plays."""

    pose_names: tuple[str, ...] = tuple(NAMED_POSES)
    transition_s: tuple[float, float] = (0.35, 0.9)
    hold_s: tuple[float, float] = (0.4, 1.5)
    rest_probability: float = 0.15  # go to rest between two poses
    blend_probability: float = 0.25  # target = blend of the pose with another one
    joint_jitter_rad: float = 0.08  # random curl offset per finger of a target
    wrist_probability: float = 0.35  # a segment moves the wrist to a new state
    effort_range: tuple[float, float] = (0.9, 1.1)

    def validate(self) -> None:
        unknown = [p for p in self.pose_names if p not in NAMED_POSES]
        if unknown or not self.pose_names:
            raise ValueError(f"unknown or no pose names {unknown}; known: {sorted(NAMED_POSES)}")
        for name, (lo, hi) in (("transition_s", self.transition_s), ("hold_s", self.hold_s)):
            if not 0 < lo <= hi:
                raise ValueError(f"{name} must be 0 < min <= max")


@dataclass(frozen=True)
class SimConfig:
    """Simulator settings. Voltages in volts, rates in Hz."""

    sample_rate_hz: float = 500.0
    num_channels: int = 8
    wearer: WearerConfig = field(default_factory=WearerConfig)
    motion: MotionConfig = field(default_factory=MotionConfig)
    mvc_amplitude_v: float = 0.5e-3  # RMS at full activation under an electrode
    noise_v: float = 4.0e-6  # RMS baseline (electrode + amplifier) noise per channel
    line_noise_hz: float = 0.0  # 0 = off, else 50 or 60
    line_noise_v: float = 20.0e-6  # amplitude of line interference
    band_hz: tuple[float, float] = (20.0, 450.0)
    activation_tau_s: float = 0.03
    velocity_gain: float = 0.12  # activation per rad/s of joint speed (agonist)
    baseline_activation: float = 0.02

    def validate(self) -> None:
        if not (math.isfinite(self.sample_rate_hz) and 100.0 <= self.sample_rate_hz <= 20000.0):
            raise ValueError(f"sample_rate_hz must be 100..20000, got {self.sample_rate_hz}")
        if not 1 <= self.num_channels <= 256:
            raise ValueError(f"num_channels must be 1..256, got {self.num_channels}")
        if self.line_noise_hz not in (0.0, 50.0, 60.0):
            raise ValueError(f"line_noise_hz must be 0, 50 or 60, got {self.line_noise_hz}")
        for name in ("mvc_amplitude_v", "noise_v", "line_noise_v"):
            v = getattr(self, name)
            if not (math.isfinite(v) and v >= 0):
                raise ValueError(f"{name} must be finite and >= 0, got {v}")
        if not 0 < self.band_hz[0] < self.band_hz[1]:
            raise ValueError("band_hz must be 0 < low < high")
        self.wearer.validate(self.num_channels)
        self.motion.validate()

    def describe(self) -> dict:
        """Flat dict of the settings (for HDF5 attributes and logs)."""
        d = asdict(self)
        w = d.pop("wearer")
        m = d.pop("motion")
        d.update({f"wearer_{k}": v for k, v in w.items()})
        d.update({f"motion_{k}": v for k, v in m.items()})
        return d


# --- motion ---------------------------------------------------------------------------


_FINGER_OF_JOINT_GROUPS = ("thumb", "index", "middle", "ring", "pinky")
_FINGER_OF_JOINT = np.array([_FINGER_OF_JOINT_GROUPS.index(j.split("_")[0]) for j in JOINT_NAMES])
_FE_MASK = np.array([1.0 if j.endswith("_fe") else 0.0 for j in JOINT_NAMES])


def _min_jerk(tau: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
    """Minimum-jerk position s(tau) and ds/dtau for tau in [0, 1]."""
    t = np.clip(tau, 0.0, 1.0)
    s = t * t * t * (10.0 - 15.0 * t + 6.0 * t * t)
    ds = 30.0 * t * t * (1.0 - 2.0 * t + t * t)
    return s, ds


@dataclass
class _Segment:
    start: int  # sample index where the transition starts
    move_len: int  # samples of transition
    end: int  # sample index after the hold
    q_from: np.ndarray
    q_to: np.ndarray
    w_from: np.ndarray
    w_to: np.ndarray
    e_from: float
    e_to: float
    label: int  # index into pose_names, or -1 for a blended/jittered-away target


class MotionGenerator:
    """Seeded, repeatable hand + wrist motion, sample by sample at ``rate_hz``."""

    def __init__(self, config: MotionConfig, rate_hz: float, rng: np.random.Generator) -> None:
        config.validate()
        self.config = config
        self.rate_hz = float(rate_hz)
        self._rng = rng
        self._order: list[str] = []
        self._segments: list[_Segment] = []
        q0 = REST.copy()
        self._last = (q0, np.zeros(2), 1.0)
        self._next_start = 0

    def _pick_pose(self) -> str:
        if not self._order:
            self._order = list(self.config.pose_names)
            self._rng.shuffle(self._order)
        return self._order.pop()

    def _new_segment(self) -> _Segment:
        cfg, rng = self.config, self._rng
        q_from, w_from, e_from = self._last
        if rng.random() < cfg.rest_probability and "rest" in NAMED_POSES:
            name = "rest"
        else:
            name = self._pick_pose()
        q_to = NAMED_POSES[name].copy()
        label = cfg.pose_names.index(name) if name in cfg.pose_names else -1
        if rng.random() < cfg.blend_probability:
            other = NAMED_POSES[cfg.pose_names[rng.integers(len(cfg.pose_names))]]
            u = rng.uniform(0.25, 0.6)
            q_to = (1.0 - u) * q_to + u * other
            label = -1
        # variation: a common curl offset per finger (joints move in synergy) plus a smaller
        # independent offset per joint
        curl = rng.normal(0.0, cfg.joint_jitter_rad, len(_FINGER_OF_JOINT_GROUPS))
        q_to = (q_to + curl[_FINGER_OF_JOINT] * _FE_MASK
                + rng.normal(0.0, 0.4 * cfg.joint_jitter_rad, NUM_JOINTS))
        q_to = np.clip(q_to, JOINT_LOWER, JOINT_UPPER)
        if rng.random() < cfg.wrist_probability:
            move = list(WRIST_MOVES.values())[rng.integers(len(WRIST_MOVES))]
            w_to = np.asarray(move) * rng.uniform(0.5, 1.0)
        else:
            w_to = w_from.copy()
        e_to = float(rng.uniform(*cfg.effort_range))
        move_len = max(1, int(round(rng.uniform(*cfg.transition_s) * self.rate_hz)))
        hold_len = max(1, int(round(rng.uniform(*cfg.hold_s) * self.rate_hz)))
        seg = _Segment(self._next_start, move_len, self._next_start + move_len + hold_len,
                       q_from, q_to, w_from, w_to, e_from, e_to, label)
        self._next_start = seg.end
        self._last = (q_to, w_to, e_to)
        return seg

    def _state_at(self, index: int) -> tuple[np.ndarray, np.ndarray, float]:
        """(q, wrist, effort) at sample ``index`` of the planned motion."""
        while not self._segments or self._segments[-1].end <= index:
            self._segments.append(self._new_segment())
        for seg in self._segments:
            if seg.start <= index < seg.end:
                s, _ = _min_jerk(np.array([(index - seg.start) / seg.move_len]))
                return (seg.q_from + s[0] * (seg.q_to - seg.q_from),
                        seg.w_from + s[0] * (seg.w_to - seg.w_from),
                        float(seg.e_from + s[0] * (seg.e_to - seg.e_from)))
        return self._last

    def command(self, name: str, at: int, transition_s: float = 0.6) -> None:
        """From sample ``at`` on, move to the named pose and hold it until the next command
        or :meth:`release` (a simulated wearer following a calibration prompt). ``at`` must
        not precede samples already generated."""
        if name not in NAMED_POSES:
            raise ValueError(f"unknown pose {name!r}; known: {sorted(NAMED_POSES)}")
        q_from, w_from, e_from = self._state_at(at)
        self._segments = [seg for seg in self._segments if seg.start < at]
        for seg in self._segments:
            seg.end = min(seg.end, at)
        move_len = max(1, int(round(transition_s * self.rate_hz)))
        hold_forever = 10 ** 12
        q_to = NAMED_POSES[name].copy()
        label = self.config.pose_names.index(name) if name in self.config.pose_names else -1
        seg = _Segment(at, move_len, at + hold_forever, q_from, q_to, w_from, w_from, e_from,
                       e_from, label)
        self._segments.append(seg)
        self._next_start = seg.end
        self._last = (q_to, w_from, e_from)

    def release(self, at: int) -> None:
        """End a commanded hold at sample ``at`` (or when its transition ends) and return to
        the seeded random motion."""
        if not self._segments or self._segments[-1].end < 10 ** 12:
            return
        seg = self._segments[-1]
        seg.end = max(at, seg.start + seg.move_len)
        self._next_start = seg.end

    def generate(self, start: int, n: int) -> dict[str, np.ndarray]:
        """Samples ``start .. start+n-1`` (must follow the previous call).

        Returns q (n, 20) [rad], qd (n, 20) [rad/s], wrist (n, 2), wrist_d (n, 2) [1/s],
        effort (n,), label (n,) int (pose index of the segment's target, -1 if blended),
        holding (n,) bool (in the hold phase of a segment).
        """
        while not self._segments or self._segments[-1].end < start + n:
            self._segments.append(self._new_segment())
        while self._segments and self._segments[0].end <= start:
            self._segments.pop(0)
        out = {
            "q": np.empty((n, NUM_JOINTS)), "qd": np.empty((n, NUM_JOINTS)),
            "wrist": np.empty((n, 2)), "wrist_d": np.empty((n, 2)),
            "effort": np.empty(n), "label": np.empty(n, dtype=np.int16),
            "holding": np.empty(n, dtype=bool),
        }
        for seg in self._segments:
            lo, hi = max(seg.start, start), min(seg.end, start + n)
            if lo >= hi:
                continue
            k = np.arange(lo, hi)
            tau = (k - seg.start) / seg.move_len
            s, ds = _min_jerk(tau)
            ds = ds * (self.rate_hz / seg.move_len)  # d/dt [1/s]
            sl = slice(lo - start, hi - start)
            dq = seg.q_to - seg.q_from
            out["q"][sl] = seg.q_from + s[:, None] * dq
            out["qd"][sl] = ds[:, None] * dq
            dw = seg.w_to - seg.w_from
            out["wrist"][sl] = seg.w_from + s[:, None] * dw
            out["wrist_d"][sl] = ds[:, None] * dw
            out["effort"][sl] = seg.e_from + s * (seg.e_to - seg.e_from)
            out["label"][sl] = seg.label
            out["holding"][sl] = tau >= 1.0
        return out


# --- muscles from motion --------------------------------------------------------------

_REST_Q = REST.copy()
_J = JOINT_INDEX


def _relu(x: np.ndarray) -> np.ndarray:
    return np.maximum(x, 0.0)


def muscle_drive(q: np.ndarray, qd: np.ndarray, wrist: np.ndarray, wrist_d: np.ndarray,
                 effort: np.ndarray, velocity_gain: float = 0.12,
                 baseline: float = 0.02) -> np.ndarray:
    """Neural drive (0..1) of each muscle in :data:`MUSCLES`: (n, muscles).

    Static term: holding a joint flexed beyond the relaxed (rest) posture needs the flexor,
    holding it extended needs the extensor, scaled per muscle so that a firm fist or a
    fully open hand is about 0.6-0.8. Velocity term: the agonist of a movement gets
    ``velocity_gain`` per rad/s. Gripping co-activates the wrist extensors (stabilisation).
    """
    n = q.shape[0]
    dev = q - _REST_Q  # + = more flexed than relaxed
    drive = np.zeros((n, len(MUSCLES)))

    def finger(f: str) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
        return dev[:, _J[f"{f}_mcp_fe"]], dev[:, _J[f"{f}_pip_fe"]], dev[:, _J[f"{f}_dip_fe"]]

    def speed(f: str) -> np.ndarray:
        return (qd[:, _J[f"{f}_mcp_fe"]] + qd[:, _J[f"{f}_pip_fe"]]
                + 0.5 * qd[:, _J[f"{f}_dip_fe"]]) / 2.5

    flex_s: dict[str, np.ndarray] = {}  # superficial flexor demand per finger (PIP, MCP)
    flex_d: dict[str, np.ndarray] = {}  # deep flexor demand (DIP)
    ext: dict[str, np.ndarray] = {}
    vel: dict[str, np.ndarray] = {}
    for f in ("index", "middle", "ring", "pinky"):
        mcp, pip, dip = finger(f)
        flex_s[f] = 0.30 * _relu(pip) + 0.22 * _relu(mcp)
        flex_d[f] = 0.35 * _relu(dip) + 0.10 * _relu(mcp)
        ext[f] = 0.85 * _relu(-mcp) + 0.35 * _relu(-pip) + 0.2 * _relu(-dip)
        vel[f] = speed(f)
    m = MUSCLE_INDEX
    vg = velocity_gain
    for f in ("index", "middle", "ring", "pinky"):
        drive[:, m[f"fds_{f}"]] = flex_s[f] + vg * _relu(vel[f])
    drive[:, m["fdp_index"]] = flex_d["index"] + 0.5 * vg * _relu(vel["index"])
    drive[:, m["fdp_ulnar"]] = ((flex_d["middle"] + flex_d["ring"] + flex_d["pinky"]) / 3
                                + 0.5 * vg * _relu((vel["middle"] + vel["ring"]
                                                    + vel["pinky"]) / 3))
    drive[:, m["edc_index_middle"]] = (0.5 * (ext["index"] + ext["middle"])
                                       + vg * _relu(-0.5 * (vel["index"] + vel["middle"])))
    drive[:, m["edc_ring_pinky"]] = (0.5 * (ext["ring"] + ext["pinky"])
                                     + vg * _relu(-0.5 * (vel["ring"] + vel["pinky"])))
    # thumb: FPL flexes IP/MCP (and assists CMC flexion); EPL/APL extend and abduct
    t_cmc, t_aa = dev[:, _J["thumb_cmc_fe"]], dev[:, _J["thumb_cmc_aa"]]
    t_mcp, t_ip = dev[:, _J["thumb_mcp_fe"]], dev[:, _J["thumb_ip_fe"]]
    t_vel = (qd[:, _J["thumb_ip_fe"]] + qd[:, _J["thumb_mcp_fe"]] + qd[:, _J["thumb_cmc_fe"]]) / 3
    drive[:, m["fpl"]] = (0.45 * _relu(t_ip) + 0.30 * _relu(t_mcp) + 0.25 * _relu(t_cmc)
                          + 0.15 * _relu(t_aa) + vg * _relu(t_vel))
    drive[:, m["epl_apl"]] = (0.55 * _relu(-t_cmc) + 0.45 * _relu(-t_ip) + 0.35 * _relu(-t_mcp)
                              + 0.25 * _relu(-t_aa) + vg * _relu(-t_vel))
    # wrist: flexion(+)/extension(-), radial(+)/ulnar(-) deviation, each in [-1, 1]
    wf, wr = wrist[:, 0], wrist[:, 1]
    wfd, wrd = wrist_d[:, 0], wrist_d[:, 1]
    def wrist_muscle(flex: float, radial: float) -> np.ndarray:
        # flex/radial = +1 (flexor / radial-side muscle) or -1 (extensor / ulnar-side)
        return (0.55 * _relu(flex * wf) + 0.40 * _relu(radial * wr)
                + 0.10 * _relu(flex * wfd) + 0.05 * _relu(radial * wrd))

    drive[:, m["fcr"]] = wrist_muscle(1.0, 1.0)
    drive[:, m["fcu"]] = wrist_muscle(1.0, -1.0)
    drive[:, m["ecr"]] = wrist_muscle(-1.0, 1.0)
    drive[:, m["ecu"]] = wrist_muscle(-1.0, -1.0)
    grip = (drive[:, m["fds_index"]] + drive[:, m["fds_middle"]] + drive[:, m["fds_ring"]]
            + drive[:, m["fds_pinky"]] + drive[:, m["fpl"]]) / 5
    drive[:, m["ecr"]] += 0.30 * grip
    drive[:, m["ecu"]] += 0.20 * grip
    drive *= effort[:, None]
    return np.clip(drive + baseline, 0.0, 1.0)


def mixing_matrix(num_channels: int, wearer: WearerConfig = WEARER_A) -> np.ndarray:
    """Muscle -> channel amplitude weights (channels, muscles), including the armband's
    rotation, the channel gains and neighbour crosstalk."""
    shift = wearer.electrode_shift
    phi = 2.0 * np.pi * (np.arange(num_channels) + shift) / num_channels
    theta = np.array([mu.angle_rad for mu in MUSCLES])
    focus = np.array([mu.focus for mu in MUSCLES])
    gain = np.array([mu.gain for mu in MUSCLES])
    w = gain * np.exp(focus * (np.cos(phi[:, None] - theta[None, :]) - 1.0))
    if wearer.channel_gains is not None:
        w = w * np.asarray(wearer.channel_gains)[:, None]
    eps = wearer.crosstalk if num_channels > 2 else 0.0
    if eps > 0:
        x = (1.0 - 2.0 * eps) * np.eye(num_channels)
        x += eps * np.roll(np.eye(num_channels), 1, axis=1)
        x += eps * np.roll(np.eye(num_channels), -1, axis=1)
        w = x @ w
    return w * wearer.amplitude_scale


# --- the armband ----------------------------------------------------------------------


@dataclass
class SimOutput:
    """One block of simulator output (n samples)."""

    emg: np.ndarray  # (n, C) float32 [V]
    joint_angles: np.ndarray  # (n, 20) float32 [rad]
    activations: np.ndarray  # (n, muscles) float32, 0..1
    wrist: np.ndarray  # (n, 2) float32, latent wrist state
    label: np.ndarray  # (n,) int16 pose index in config.motion.pose_names (-1 = blend)
    holding: np.ndarray  # (n,) bool
    first_index: int


class ArmbandSimulator:
    """Seeded armband simulator; :meth:`generate` continues seamlessly across calls."""

    def __init__(self, config: SimConfig | None = None, seed: int = 0) -> None:
        config = config or SimConfig()
        config.validate()
        self.config = config
        self.seed = int(seed)
        root = np.random.SeedSequence(self.seed)
        motion_seq, carrier_seq, noise_seq, line_seq = root.spawn(4)
        self._carrier_rng = np.random.default_rng(carrier_seq)
        self._noise_rng = np.random.default_rng(noise_seq)
        line_rng = np.random.default_rng(line_seq)
        fs = config.sample_rate_hz
        c = config.num_channels
        self.channel_names = list(default_channel_names(c))
        self.motion = MotionGenerator(config.motion, fs, np.random.default_rng(motion_seq))
        self.mixing = mixing_matrix(c, config.wearer) * config.mvc_amplitude_v
        # band-limited carriers, normalised to unit variance
        lo, hi = config.band_hz
        hi = min(hi, 0.45 * fs)
        from scipy import signal  # imported here: it takes a second, and only the sim needs it

        self._signal = signal
        self._sos = signal.butter(2, [lo, hi], btype="bandpass", fs=fs, output="sos")
        _, h = signal.sosfreqz(self._sos, worN=8192)
        self._carrier_scale = 1.0 / math.sqrt(float(np.mean(np.abs(h) ** 2)))
        self._carrier_zi = np.zeros((self._sos.shape[0], 2, len(MUSCLES)))
        # activation dynamics: first-order low-pass
        a = math.exp(-1.0 / (config.activation_tau_s * fs))
        self._act_b, self._act_a = np.array([1.0 - a]), np.array([1.0, -a])
        self._act_zi: np.ndarray | None = None
        # line interference: per-channel amplitude and phase
        self._line_amp = config.line_noise_v * line_rng.uniform(0.5, 1.0, c)
        self._line_phase = line_rng.uniform(0.0, 2.0 * np.pi, c)
        self.next_index = 0

    @property
    def sample_rate_hz(self) -> float:
        return self.config.sample_rate_hz

    @property
    def num_channels(self) -> int:
        return self.config.num_channels

    def command_pose(self, name: str) -> None:
        """The simulated wearer moves to the named pose now and holds it (see
        :meth:`MotionGenerator.command`); :meth:`release_pose` returns to free motion."""
        self.motion.command(name, self.next_index)

    def release_pose(self) -> None:
        self.motion.release(self.next_index)

    def generate(self, n_samples: int) -> tuple[np.ndarray, np.ndarray]:
        """The next ``n_samples``: (emg (n, C) float32 [V], joint_angles (n, 20) float32 [rad])."""
        out = self.generate_detailed(n_samples)
        return out.emg, out.joint_angles

    def generate_detailed(self, n_samples: int) -> SimOutput:
        """Like :meth:`generate`, with the latent muscle activations, wrist and pose labels."""
        n = int(n_samples)
        if n < 0:
            raise ValueError("n_samples must be >= 0")
        cfg = self.config
        start = self.next_index
        mot = self.motion.generate(start, n)
        drive = muscle_drive(mot["q"], mot["qd"], mot["wrist"], mot["wrist_d"], mot["effort"],
                             cfg.velocity_gain, cfg.baseline_activation)
        if n and self._act_zi is None:
            self._act_zi = -self._act_a[1] * drive[:1]  # start settled at the first drive
        if n:
            act, self._act_zi = self._signal.lfilter(self._act_b, self._act_a, drive, axis=0,
                                               zi=self._act_zi)
        else:
            act = drive
        white = self._carrier_rng.standard_normal((n, len(MUSCLES)))
        carriers, self._carrier_zi = self._signal.sosfilt(self._sos, white, axis=0,
                                                          zi=self._carrier_zi)
        sources = act * carriers * self._carrier_scale  # (n, muscles)
        emg = sources @ self.mixing.T
        emg += cfg.noise_v * self._noise_rng.standard_normal((n, cfg.num_channels))
        if cfg.line_noise_hz > 0:
            t = (start + np.arange(n)) / cfg.sample_rate_hz
            emg += self._line_amp * np.sin(2 * np.pi * cfg.line_noise_hz * t[:, None]
                                           + self._line_phase)
        self.next_index += n
        return SimOutput(
            emg=emg.astype(np.float32), joint_angles=mot["q"].astype(np.float32),
            activations=act.astype(np.float32), wrist=mot["wrist"].astype(np.float32),
            label=mot["label"], holding=mot["holding"], first_index=start,
        )


__all__ = [
    "EXTENSOR_MUSCLES", "FLEXOR_MUSCLES", "MUSCLES", "MUSCLE_NAMES", "WEARER_A", "WRIST_MOVES",
    "ArmbandSimulator", "MotionConfig", "MotionGenerator", "Muscle", "SimConfig", "SimOutput",
    "WearerConfig", "mixing_matrix", "muscle_drive",
    "wearer_b",
]
