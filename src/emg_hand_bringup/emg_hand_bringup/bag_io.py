"""Writing and reading rosbag2 folders with rosbags (no rclpy).

:class:`BagWriter` writes what `ros2 bag record` (Jazzy) writes: a folder with
``metadata.yaml`` (version 9) and one MCAP or sqlite3 file, every topic with its standard
type name, its publishers' offered QoS, its type hash and its message definition (ours from
``emg_interfaces``' .msg files, see :mod:`.bag_types`). Messages go in as the CDR bytes
received from DDS, stamped with their receipt time (the log time).

:class:`BagSource` reads one back for playing: topics with type, recorded QoS and count,
and the raw messages in log-time order.
"""

from __future__ import annotations

from collections.abc import Iterable, Iterator, Sequence
from dataclasses import dataclass, field
from pathlib import Path

from rosbags.interfaces import Connection, Qos
from rosbags.rosbag2 import Reader, StoragePlugin, Writer
from rosbags.rosbag2.errors import ReaderError, WriterError
from rosbags.typesys.store import Typestore

from emg_hand_core.bag_types import ensure_type, typestore

from .bag_core import METADATA_VERSION, STORAGE_IDS, BagError

_STORAGE_PLUGINS = {"mcap": StoragePlugin.MCAP, "sqlite3": StoragePlugin.SQLITE3}


@dataclass
class TopicRecord:
    """One recorded topic: what the writer registered and how many messages it holds."""

    name: str
    msgtype: str
    offered_qos: list[Qos]
    type_hash: str
    definition_found: bool
    count: int = 0
    connection: Connection | None = field(default=None, repr=False)


class BagWriter:
    """A rosbag2 folder being written; ``close()`` (or the context manager) finishes it.

    ``close()`` writes the storage file's index and ``metadata.yaml``; until then the
    folder is not a readable bag, so callers close it on every way out (signals included).
    """

    def __init__(self, path: str | Path, storage: str = "mcap",
                 store: Typestore | None = None) -> None:
        if storage not in _STORAGE_PLUGINS:
            raise BagError(f"unknown storage {storage!r}; choose one of {', '.join(STORAGE_IDS)}")
        self.path = Path(path)
        self.storage = storage
        self.store = store if store is not None else typestore()
        self.topics: dict[str, TopicRecord] = {}
        self.warnings: list[str] = []
        try:
            self._writer = Writer(self.path, version=METADATA_VERSION,
                                  storage_plugin=_STORAGE_PLUGINS[storage])
            self._writer.open()
        except WriterError as exc:
            raise BagError(str(exc)) from None
        self._closed = False

    def add_topic(self, name: str, msgtype: str, offered_qos: Sequence[Qos] = (),
                  type_hash: str | None = None) -> TopicRecord:
        """Register a topic (once); its definition comes from the type store.

        ``type_hash`` is the publishers' RIHS01 hash from the graph; it is what the metadata
        records (as rosbag2 does). A definition that is not found is recorded empty with a
        warning: the messages are still kept, only readers need the type from elsewhere.
        """
        if name in self.topics:
            raise BagError(f"topic {name} is already in the bag")
        found = ensure_type(self.store, msgtype)
        if found:
            msgdef, _ = self.store.generate_msgdef(msgtype, ros_version=2)
            local_hash = self.store.hash_rihs01(msgtype)
            if type_hash and type_hash != local_hash:
                self.warnings.append(
                    f"{name}: the publishers' type hash {type_hash} differs from the local "
                    f"definition of {msgtype} ({local_hash}); the embedded definition may not "
                    f"match the recorded data")
            digest = type_hash or local_hash
        else:
            msgdef = ""
            digest = type_hash or "RIHS01_" + "0" * 64
            self.warnings.append(f"{name}: no definition of {msgtype} found; recording it "
                                 f"without an embedded definition")
        connection = self._writer.add_connection(
            name, msgtype, msgdef=msgdef, rihs01=digest, serialization_format="cdr",
            offered_qos_profiles=list(offered_qos))
        record = TopicRecord(name, msgtype, list(offered_qos), digest, found,
                             connection=connection)
        self.topics[name] = record
        return record

    def write(self, record: TopicRecord, log_time_ns: int, data: bytes | memoryview) -> None:
        """Append one CDR-serialized message received at ``log_time_ns``."""
        self._writer.write(record.connection, log_time_ns, data)
        record.count += 1

    @property
    def message_count(self) -> int:
        return sum(t.count for t in self.topics.values())

    def close(self) -> None:
        """Finish the storage file and write metadata.yaml (idempotent)."""
        if not self._closed:
            self._closed = True
            self._writer.close()

    def __enter__(self) -> BagWriter:
        return self

    def __exit__(self, *exc: object) -> None:
        self.close()


@dataclass(frozen=True)
class TopicInfo:
    name: str
    msgtype: str
    offered_qos: list[Qos]
    count: int
    connections: list[Connection]


class BagSource:
    """A rosbag2 folder opened for playing (context manager)."""

    def __init__(self, path: str | Path) -> None:
        self.path = Path(path)
        if not (self.path / "metadata.yaml").is_file():
            raise BagError(f"{path}: not a rosbag2 folder (no metadata.yaml)")
        try:
            self._reader = Reader(self.path)
            self._reader.open()
        except (ReaderError, OSError) as exc:
            raise BagError(f"{path}: cannot open bag: {exc}") from None
        self.topics: dict[str, TopicInfo] = {}
        for name, info in self._reader.topics.items():
            if info.msgtype is None:
                raise BagError(f"{path}: topic {name} has connections of different types")
            offered = [q for c in info.connections for q in c.ext.offered_qos_profiles]
            self.topics[name] = TopicInfo(name, info.msgtype, offered, info.msgcount,
                                          list(info.connections))

    @property
    def start_ns(self) -> int:
        return self._reader.start_time

    @property
    def end_ns(self) -> int:
        """Log time of the last message (rosbags' end_time is one ns after it)."""
        return max(self._reader.end_time - 1, self._reader.start_time)

    @property
    def message_count(self) -> int:
        return self._reader.message_count

    def messages(self, topics: Iterable[str] | None = None,
                 start_ns: int | None = None) -> Iterator[tuple[str, int, bytes]]:
        """``(topic, log_time_ns, cdr_bytes)`` in log-time order."""
        names = list(self.topics) if topics is None else list(topics)
        unknown = [n for n in names if n not in self.topics]
        if unknown:
            raise BagError(f"{self.path}: no topic(s) {', '.join(unknown)} in the bag "
                           f"(it has {', '.join(sorted(self.topics))})")
        connections = [c for n in names for c in self.topics[n].connections]
        if not connections:
            return
        for connection, stamp, data in self._reader.messages(connections, start=start_ns):
            yield connection.topic, stamp, data

    def close(self) -> None:
        if self._reader.is_open:
            self._reader.close()

    def __enter__(self) -> BagSource:
        return self

    def __exit__(self, *exc: object) -> None:
        self.close()
