"""A directory as a streamed .tar.gz: tarfile writes each member's header, zlib gzips the stream chunk by chunk,
so a large model.safetensors is never held in memory whole (tarfile's own writer takes a member in one call)."""
import tarfile
import time
import zlib
from collections.abc import Iterator
from pathlib import Path

CHUNK_BYTES = 1 << 20
GZIP_WBITS = 16 + zlib.MAX_WBITS  # a gzip header and trailer around the deflate stream


def tar_gz_chunks(directory: Path, arcname: str, extra: dict[str, bytes] | None = None) -> Iterator[bytes]:
    """The files under `directory`, as members `arcname/<relative path>` of a gzipped tar archive, then the `extra`
    files ({relative path: content}, made in memory), which replace any directory file of the same path."""
    extra = extra or {}
    gzip = zlib.compressobj(6, zlib.DEFLATED, GZIP_WBITS)
    for path in sorted(p for p in directory.rglob("*") if p.is_file()):
        if path.relative_to(directory).as_posix() in extra:
            continue
        stat = path.stat()
        member = tarfile.TarInfo(f"{arcname}/{path.relative_to(directory).as_posix()}")
        member.size, member.mtime, member.mode = stat.st_size, int(stat.st_mtime), 0o644
        yield gzip.compress(member.tobuf(format=tarfile.PAX_FORMAT))
        with path.open("rb") as file:
            while chunk := file.read(CHUNK_BYTES):
                yield gzip.compress(chunk)
        yield gzip.compress(bytes(-stat.st_size % tarfile.BLOCKSIZE))  # members are padded to whole blocks
    for name, content in extra.items():
        member = tarfile.TarInfo(f"{arcname}/{name}")
        member.size, member.mtime, member.mode = len(content), int(time.time()), 0o644
        yield gzip.compress(member.tobuf(format=tarfile.PAX_FORMAT) + content
                            + bytes(-len(content) % tarfile.BLOCKSIZE))
    yield gzip.compress(bytes(2 * tarfile.BLOCKSIZE))  # end-of-archive marker
    yield gzip.flush()
