#!/usr/bin/python3
"""A second-language simarray client: Debian 12's python3-grpcio, with stubs generated
from proto/ at run time by protoc and grpc_python_plugin (python3-grpc-tools in Debian 12
is too old for the generated code).

It creates a volume on the primary, writes a few KiB with their CRC-32C, reads them back,
runs CheckConsistency and exits 0 only if the data came back intact and the pair is
consistent.

    examples/python/simarray_client.py --admin 127.0.0.1:7102 --host 127.0.0.1:7101

Needs: protobuf-compiler, protobuf-compiler-grpc (grpc_python_plugin), python3-grpcio,
python3-protobuf.
"""

import argparse
import importlib
import os
import shutil
import subprocess
import sys
import tempfile

HERE = os.path.dirname(os.path.abspath(__file__))
DEFAULT_PROTO_DIR = os.path.normpath(os.path.join(HERE, "..", "..", "proto"))
PROTOS = ["simarray/v1/host.proto", "simarray/v1/admin.proto"]


def _crc32c_table():
    table = []
    for i in range(256):
        c = i
        for _ in range(8):
            c = (c >> 1) ^ 0x82F63B78 if c & 1 else c >> 1
        table.append(c)
    return table


_CRC32C_TABLE = _crc32c_table()


def crc32c(data: bytes) -> int:
    """CRC-32C (Castagnoli), as the array checks it; crc32c(b"123456789") == 0xE3069283."""
    crc = 0xFFFFFFFF
    table = _CRC32C_TABLE
    for b in data:
        crc = table[(crc ^ b) & 0xFF] ^ (crc >> 8)
    return crc ^ 0xFFFFFFFF


def generate_stubs(proto_dir: str, out_dir: str, plugin: str):
    """Runs protoc with grpc_python_plugin into out_dir and imports the modules."""
    protoc = shutil.which("protoc")
    if protoc is None:
        sys.exit("simarray_client: protoc not found (apt-get install protobuf-compiler)")
    if not os.access(plugin, os.X_OK):
        sys.exit(f"simarray_client: {plugin} not found (apt-get install protobuf-compiler-grpc)")
    cmd = [protoc, f"--proto_path={proto_dir}", f"--python_out={out_dir}",
           f"--grpc_python_out={out_dir}", f"--plugin=protoc-gen-grpc_python={plugin}"] + PROTOS
    result = subprocess.run(cmd, capture_output=True, text=True)
    if result.returncode != 0:
        sys.exit(f"simarray_client: protoc failed: {result.stderr.strip()}")
    sys.path.insert(0, out_dir)
    modules = {}
    for name in ("host_pb2", "host_pb2_grpc", "admin_pb2", "admin_pb2_grpc"):
        modules[name] = importlib.import_module(f"simarray.v1.{name}")
    return modules


def pattern(length: int, seed: int) -> bytes:
    return bytes((i * 131 + seed * 7 + (i >> 8)) & 0xFF for i in range(length))


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--admin", required=True, help="primary's admin address host:port")
    parser.add_argument("--host", required=True, help="primary's grpc host adaptor host:port")
    parser.add_argument("--volume", default="pyvol", help="volume to create (default pyvol)")
    parser.add_argument("--size", type=int, default=4 << 20, help="volume size in bytes")
    parser.add_argument("--bytes", type=int, default=12 << 10, help="bytes to write")
    parser.add_argument("--offset", type=int, default=65536 - 1024,
                        help="where to write (default: across a 64 KiB track boundary)")
    parser.add_argument("--proto-dir", default=DEFAULT_PROTO_DIR)
    parser.add_argument("--plugin", default="/usr/bin/grpc_python_plugin")
    parser.add_argument("--timeout", type=float, default=30.0, help="seconds per call")
    parser.add_argument("--token-file", help="the primary's admin token file (admin.token_file)")
    args = parser.parse_args()
    # Admin calls carry the token as metadata when the daemon asks for one.
    admin_metadata = []
    if args.token_file:
        with open(args.token_file) as f:
            admin_metadata = [("authorization", "Bearer " + f.read().strip())]

    if crc32c(b"123456789") != 0xE3069283:
        print("simarray_client: CRC-32C self-check failed", file=sys.stderr)
        return 2

    import grpc  # python3-grpcio

    with tempfile.TemporaryDirectory(prefix="simarray-py-") as out_dir:
        m = generate_stubs(args.proto_dir, out_dir, args.plugin)
        host_pb2, admin_pb2 = m["host_pb2"], m["admin_pb2"]
        admin = m["admin_pb2_grpc"].AdminServiceStub(grpc.insecure_channel(args.admin))
        host = m["host_pb2_grpc"].HostServiceStub(grpc.insecure_channel(args.host))
        try:
            vol = admin.CreateVolume(
                admin_pb2.CreateVolumeRequest(name=args.volume, size=args.size),
                timeout=args.timeout, metadata=admin_metadata)
            print(f"created volume {vol.name} (id {vol.id}, {vol.size} bytes, "
                  f"paired={vol.paired})")

            data = pattern(args.bytes, 5)
            reply = host.Write(host_pb2.WriteRequest(volume=args.volume, offset=args.offset,
                                                     data=data, crc32c=crc32c(data)),
                               timeout=args.timeout)
            print(f"wrote {len(data)} bytes at {args.offset}: sequence {reply.sequence}, "
                  f"{reply.portions} portions, mirrored={reply.mirrored}")

            read = host.Read(host_pb2.ReadRequest(volume=args.volume, offset=args.offset,
                                                  length=len(data)), timeout=args.timeout)
            if read.crc32c != crc32c(read.data):
                print("read: crc32c of the reply does not match its data", file=sys.stderr)
                return 1
            if read.data != data:
                print("read: data differs from what was written", file=sys.stderr)
                return 1
            print(f"read back {len(read.data)} bytes, crc32c {read.crc32c:#010x}: identical")

            check = admin.CheckConsistency(
                admin_pb2.CheckConsistencyRequest(volume=args.volume, wait_ms=10000),
                timeout=args.timeout + 10, metadata=admin_metadata)
            print(f"consistency: consistent={check.consistent}, cut {check.cut_sequence}, "
                  f"{check.tracks_compared} tracks compared, "
                  f"{len(check.mismatched_tracks)} mismatched, owed {check.owed_tracks}")
        except grpc.RpcError as e:
            print(f"simarray_client: {e.code().name}: {e.details()}", file=sys.stderr)
            return 1
        return 0 if check.consistent else 1


if __name__ == "__main__":
    sys.exit(main())
