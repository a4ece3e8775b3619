"""Launch the Milvus standalone server that PyPI ``milvus==2.3.5`` ships, as a process of its own.

``python -m lfr.stack.milvus_server --data-dir D --port P --metrics-port M [--auth]`` writes the server's
configuration (every port chosen by the caller, so two stacks on one machine never race for the package's
fixed defaults), then *replaces itself* with the milvus binary: the pid the stack records is the server's,
and stopping its process group stops exactly it.

Why not ``milvus.default_server.start()``: that keeps the server a child of the calling Python process and
unpacks its 250 MB of binaries into every data dir. Here they are unpacked once per machine into a cache
shared by every stack (atomically, so concurrent first starts cannot see half a file).
"""

from __future__ import annotations

import argparse
import os
import shutil
import socket
import sys
from pathlib import Path

# Ports in the package's config template; each gets a free port from the caller's range.
PORT_KEYS = (
    "etcd_port",
    "root_coord_port",
    "proxy_port",
    "proxy_internal_port",
    "query_coord_port",
    "query_node_port",
    "index_coord_port",
    "index_node_port",
    "data_coord_port",
    "data_node_port",
)
# Server settings the template leaves at values unsuited to one machine:
EXTRA = {
    # Strong-consistency reads wait for the next time tick: 200 ms by default, 20 ms here (measured:
    # filtered search p50 200 ms -> 40 ms on 10,000 rows; docs/performance.md).
    "proxy.timeTickInterval": 20,
    # `lfr stack down` allows a few seconds before SIGKILL; the write-ahead log makes a kill safe.
    "common.gracefulStopTimeout": 5,
}


PORT_LOST = b"address already in use"
"""What the server's log says when another process took one of its ports between choosing and binding."""


def command(data_dir: Path, port: int, metrics_port: int, other_ports: str, *extra: str) -> list[str]:
    """The command line that starts the server: ``other_ports`` is a comma list, one per ``PORT_KEYS``;
    ``extra`` adds flags such as ``--auth`` or the TLS files."""
    argv = [sys.executable, "-m", "lfr.stack.milvus_server", "--data-dir", str(data_dir)]
    return [
        *argv,
        "--port",
        str(port),
        "--metrics-port",
        str(metrics_port),
        "--other-ports",
        other_ports,
        *extra,
    ]


def lost_a_port(log: bytes) -> bool:
    """Whether a server that exited during start-up did so because a port was taken meanwhile (start it
    again on fresh ports) rather than for a reason a restart would repeat."""
    return PORT_LOST in log


def binary_cache() -> Path:
    import milvus

    root = Path(os.environ.get("XDG_CACHE_HOME", Path.home() / ".cache"))
    return root / "lfr" / f"milvus-{milvus.__version__}"


def unpack_binaries() -> Path:
    """The unpacked server binaries, shared by every stack on this machine; returns the bin dir."""
    from milvus import _initialize_data_files

    cache = binary_cache()
    bin_dir = cache / "bin"
    if (bin_dir / "milvus").exists():
        return bin_dir
    staging = cache / f"staging-{os.getpid()}"
    _initialize_data_files(str(staging))
    try:
        os.rename(staging / "bin", bin_dir)
    except OSError:  # another stack finished first: its copy is complete
        pass
    shutil.rmtree(staging, ignore_errors=True)
    return bin_dir


def _reusable_config_class() -> type:
    from milvus import MilvusServerConfig

    class ReusableConfig(MilvusServerConfig):
        """The package checks each port by binding it without SO_REUSEADDR, so a restart after a kill
        fails while the old connections sit in TIME_WAIT; the server itself (Go) listens with it."""

        def try_bind_port(self, port: int) -> socket.socket | None:
            sock = socket.socket(socket.AF_INET, socket.SOCK_STREAM)
            sock.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)
            try:
                sock.bind(("127.0.0.1", port))
                sock.listen()
                return sock
            except OSError:
                sock.close()
                return None

    return ReusableConfig


def _pin_etcd_ports(data_dir: Path, client_port: int, peer_port: int) -> None:
    """Give the embedded etcd its own client and peer ports.

    Without a config file the embedded etcd listens on etcd's defaults (2379, 2380) whatever the client
    endpoint says, so a second server on the machine fails to start. The package's template has no key for
    the file, so it is added to the written milvus.yaml here.
    """
    conf_dir = data_dir / "configs"
    etcd_conf = conf_dir / "embed-etcd.yaml"
    client, peer = f"http://127.0.0.1:{client_port}", f"http://127.0.0.1:{peer_port}"
    etcd_conf.write_text(
        f"name: default\nlisten-client-urls: {client}\nadvertise-client-urls: {client}\n"
        f"listen-peer-urls: {peer}\ninitial-advertise-peer-urls: {peer}\n"
        f"initial-cluster: default={peer}\n"
    )
    milvus_yaml = conf_dir / "milvus.yaml"
    text = milvus_yaml.read_text()
    marker = "  use:\n    embed: true"
    if marker not in text:
        raise SystemExit("unexpected milvus.yaml layout: cannot pin the embedded etcd's ports")
    milvus_yaml.write_text(text.replace(marker, f"  config:\n    path: {etcd_conf}\n{marker}", 1))


def main(argv: list[str] | None = None) -> None:
    _ReusableConfig = _reusable_config_class()
    p = argparse.ArgumentParser(description=__doc__)
    p.add_argument("--data-dir", required=True, type=Path)
    p.add_argument("--port", required=True, type=int, help="the gRPC/HTTP port clients use")
    p.add_argument("--metrics-port", required=True, type=int, help="healthz and metrics")
    p.add_argument("--other-ports", required=True, help="comma list of free ports for the internal services")
    p.add_argument("--auth", action="store_true", help="require a token (user:password) on every call")
    p.add_argument("--tls-cert", type=Path, help="server certificate (PEM): clients must then use TLS")
    p.add_argument("--tls-key", type=Path, help="the certificate's private key (PEM)")
    p.add_argument("--tls-ca", type=Path, help="CA bundle (PEM) the server trusts for client certificates")
    args = p.parse_args(argv)
    if (args.tls_cert is None) != (args.tls_key is None):
        p.error("--tls-cert and --tls-key go together")

    others = [int(x) for x in args.other_ports.split(",")]
    keys = [k for k in PORT_KEYS if k != "proxy_port"]
    if len(others) < len(keys) + 1:
        p.error(f"--other-ports needs {len(keys) + 1} ports")
    config = _ReusableConfig(data_dir=str(args.data_dir))
    config.configs.update({"proxy_port": args.port, **dict(zip(keys, others, strict=False))})
    config.set("authorization_enabled", bool(args.auth))
    for key, value in EXTRA.items():
        config.set(key, value)
    if args.tls_cert is not None:
        # common.security.tlsMode 1: one-way TLS on the proxy's port (2 also demands client certificates).
        config.set("tls_mode", 1)
        config.set("server_pem_path", str(args.tls_cert.resolve()))
        config.set("server_key_path", str(args.tls_key.resolve()))
        config.set("ca_pem_path", str((args.tls_ca or args.tls_cert).resolve()))
    config.resolve()  # writes <data-dir>/configs/milvus.yaml and the storage layout
    _pin_etcd_ports(args.data_dir, config.get("etcd_port"), others[len(keys)])

    bin_dir = unpack_binaries()
    env = {
        **os.environ,
        "DEPLOY_MODE": "STANDALONE",
        "METRICS_PORT": str(args.metrics_port),
        "MILVUS_RUN_DIR": str(args.data_dir / "run"),
        "LD_LIBRARY_PATH": ":".join(filter(None, [str(bin_dir), os.environ.get("LD_LIBRARY_PATH", "")])),
    }
    os.chdir(args.data_dir)  # the server finds configs/milvus.yaml relative to its working directory
    sys.stdout.flush()
    os.execve(str(bin_dir / "milvus"), [str(bin_dir / "milvus"), "run", "standalone"], env)


if __name__ == "__main__":
    main()
