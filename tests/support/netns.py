"""A pipeline in a private network namespace, for the name-resolution tests: `unshare -m -n`
gives it a network with only `lo` and its own /etc/resolv.conf, pointing at a fake DNS server
(fakedns.py) on 127.0.0.1:53. Beside it run HTTP and TLS targets on 127.0.0.1 and 127.0.0.2
that log who reached them, with which Host header or SNI. Nothing here can leave the machine.

The test talks to the pipeline through a Unix socket (the namespace's loopback is its own,
but files are shared), made by a small relay. `Sandbox` is the test's side; run as
`python -m tests.support.netns CONFIG` this module is the namespace's side."""

from __future__ import annotations

import asyncio
import json
import os
import signal
import socket
import ssl
import subprocess
import sys
import threading
import time
from dataclasses import dataclass
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from pathlib import Path

ROOT = Path(__file__).resolve().parents[2]
TARGET_ADDRESSES = ("127.0.0.1", "127.0.0.2")
TLS_NAME = "tls.test"


# --- the test's side ----------------------------------------------------------------------------

@dataclass
class Sandbox:
    directory: Path
    process: subprocess.Popen
    ready: dict

    @property
    def target(self) -> str:
        """The pipeline's gRPC target, as grpc clients take it."""
        return f"unix:{self.ready['grpc_socket']}"

    @property
    def http_port(self) -> int:
        return self.ready["http_port"]

    @property
    def tls_port(self) -> int:
        return self.ready["tls_port"]

    def hits(self) -> list[dict]:
        """What the targets saw: {"address", "connection"} per TCP connection, {"address", "host",
        "path"} per HTTP request, {"address", "sni"} per TLS handshake."""
        path = self.directory / "hits.jsonl"
        return [json.loads(line) for line in path.read_text().splitlines()] if path.exists() else []

    def questions(self) -> list[str]:
        """Names the fake DNS server was asked about, in order."""
        path = self.directory / "dns.jsonl"
        return [json.loads(line)["name"] for line in path.read_text().splitlines()] if path.exists() else []

    def pipeline_log(self) -> str:
        path = self.directory / "pipeline.log"
        return path.read_text() if path.exists() else ""

    def stop(self, timeout: float = 30) -> dict:
        """SIGTERM to the pipeline (through the namespace's side); how it ended."""
        if self.process.poll() is None:
            self.process.send_signal(signal.SIGTERM)
            try:
                self.process.wait(timeout)
            except subprocess.TimeoutExpired:
                self.process.kill()
                self.process.wait()
        path = self.directory / "exit.json"
        return json.loads(path.read_text()) if path.exists() else {}


def start_sandbox(directory: Path, dns: dict[str, list[str]], pipeline_env: dict[str, str],
                  timeout: float = 60) -> Sandbox:
    """Starts the namespace and waits until its pipeline serves."""
    directory.mkdir(parents=True, exist_ok=True)
    config = directory / "config.json"
    config.write_text(json.dumps({"directory": str(directory), "dns": dns, "pipeline_env": pipeline_env}))
    process = subprocess.Popen(["unshare", "-m", "-n", sys.executable, "-m", "tests.support.netns", str(config)],
                               cwd=ROOT, stdout=(directory / "netns.log").open("w"), stderr=subprocess.STDOUT)
    ready_path = directory / "ready.json"
    deadline = time.monotonic() + timeout
    while not ready_path.exists():
        if process.poll() is not None or time.monotonic() > deadline:
            process.kill()
            raise RuntimeError(f"the sandbox did not start:\n{(directory / 'netns.log').read_text()[-3000:]}")
        time.sleep(0.05)
    return Sandbox(directory, process, json.loads(ready_path.read_text()))


# --- the namespace's side -----------------------------------------------------------------------

def _record(directory: Path, lock: threading.Lock, entry: dict) -> None:
    with lock, (directory / "hits.jsonl").open("a") as hits:
        hits.write(json.dumps(entry) + "\n")


def _http_targets(directory: Path, lock: threading.Lock) -> int:
    class Handler(BaseHTTPRequestHandler):
        def do_GET(self) -> None:  # noqa: N802 (http.server's naming)
            _record(directory, lock, {"address": self.server.server_address[0], "host": self.headers.get("Host"),
                                      "path": self.path})
            body = b"target"
            self.send_response(200)
            self.send_header("Content-Length", str(len(body)))
            self.end_headers()
            self.wfile.write(body)

        def log_message(self, *args) -> None:
            pass

    class Server(ThreadingHTTPServer):
        daemon_threads = True

        def process_request(self, request, client_address) -> None:
            _record(directory, lock, {"address": self.server_address[0], "connection": True})
            super().process_request(request, client_address)

    port = 0
    for address in TARGET_ADDRESSES:
        server = Server((address, port), Handler)
        port = server.server_address[1]
        threading.Thread(target=server.serve_forever, daemon=True).start()
    return port


def _tls_targets(directory: Path, lock: threading.Lock) -> int:
    """TLS listeners that note the SNI a client sent, then end the handshake."""
    cert, key = _self_signed_certificate(directory, TLS_NAME)
    port = 0
    listeners = []
    for address in TARGET_ADDRESSES:
        listener = socket.create_server((address, port))
        port = listener.getsockname()[1]
        listeners.append(listener)

    def serve(listener: socket.socket) -> None:
        address = listener.getsockname()[0]

        def noted(_sock, server_name, _context) -> None:
            _record(directory, lock, {"address": address, "sni": server_name})

        own = ssl.SSLContext(ssl.PROTOCOL_TLS_SERVER)
        own.load_cert_chain(cert, key)
        own.sni_callback = noted
        while True:
            connection, _ = listener.accept()
            try:
                with own.wrap_socket(connection, server_side=True):
                    pass
            except (OSError, ssl.SSLError):
                connection.close()

    for listener in listeners:
        threading.Thread(target=serve, args=(listener,), daemon=True).start()
    return port


def _self_signed_certificate(directory: Path, name: str) -> tuple[Path, Path]:
    import datetime

    from cryptography import x509
    from cryptography.hazmat.primitives import hashes, serialization
    from cryptography.hazmat.primitives.asymmetric import ec
    from cryptography.x509.oid import NameOID

    key = ec.generate_private_key(ec.SECP256R1())
    subject = x509.Name([x509.NameAttribute(NameOID.COMMON_NAME, name)])
    now = datetime.datetime.now(datetime.timezone.utc)
    certificate = (x509.CertificateBuilder().subject_name(subject).issuer_name(subject).public_key(key.public_key())
                   .serial_number(x509.random_serial_number()).not_valid_before(now)
                   .not_valid_after(now + datetime.timedelta(days=1))
                   .add_extension(x509.SubjectAlternativeName([x509.DNSName(name)]), critical=False)
                   .sign(key, hashes.SHA256()))
    cert_path, key_path = directory / "tls.crt", directory / "tls.key"
    cert_path.write_bytes(certificate.public_bytes(serialization.Encoding.PEM))
    key_path.write_bytes(key.private_bytes(serialization.Encoding.PEM, serialization.PrivateFormat.PKCS8,
                                           serialization.NoEncryption()))
    return cert_path, key_path


async def _relay(socket_path: str, port: int) -> asyncio.AbstractServer:
    async def pump(reader: asyncio.StreamReader, writer: asyncio.StreamWriter) -> None:
        try:
            while data := await reader.read(65536):
                writer.write(data)
                await writer.drain()
        except (ConnectionError, OSError):
            pass
        finally:
            writer.close()

    async def connected(reader: asyncio.StreamReader, writer: asyncio.StreamWriter) -> None:
        try:
            upstream_reader, upstream_writer = await asyncio.open_connection("127.0.0.1", port)
        except OSError:
            writer.close()
            return
        await asyncio.gather(pump(reader, upstream_writer), pump(upstream_reader, writer))

    return await asyncio.start_unix_server(connected, path=socket_path)


def main(config_path: str) -> int:
    from tests.support import fakedns
    from tests.support.procs import free_port, health_status

    config = json.loads(Path(config_path).read_text())
    directory = Path(config["directory"])
    resolv = directory / "resolv.conf"
    resolv.write_text("nameserver 127.0.0.1\noptions timeout:1 attempts:1\n")
    subprocess.run(["mount", "--bind", str(resolv), "/etc/resolv.conf"], check=True)
    subprocess.run(["ip", "link", "set", "lo", "up"], check=True)
    fakedns.serve(config["dns"], directory / "dns.jsonl")
    lock = threading.Lock()
    http_port, tls_port = _http_targets(directory, lock), _tls_targets(directory, lock)

    grpc_port, metrics_port = free_port(), free_port()
    env = {**os.environ, "PIPELINE_GRPC_ADDR": f"127.0.0.1:{grpc_port}",
           "PIPELINE_METRICS_ADDR": f"127.0.0.1:{metrics_port}", **config["pipeline_env"]}
    with (directory / "pipeline.log").open("w") as log:
        pipeline = subprocess.Popen([sys.executable, "-m", "services", "pipeline"], env=env, cwd=ROOT,
                                    stdout=log, stderr=subprocess.STDOUT)
    deadline = time.monotonic() + 30
    while health_status(f"127.0.0.1:{grpc_port}", "opsconductor.pipeline.v1.PipelineService") != 1:
        if pipeline.poll() is not None or time.monotonic() > deadline:
            pipeline.kill()
            return 1
        time.sleep(0.05)

    async def run() -> int:
        stop = asyncio.Event()
        loop = asyncio.get_running_loop()
        loop.add_signal_handler(signal.SIGTERM, stop.set)
        grpc_socket = str(directory / "pipeline.sock")
        relay = await _relay(grpc_socket, grpc_port)
        (directory / "ready.json").write_text(json.dumps({
            "grpc_socket": grpc_socket, "http_port": http_port, "tls_port": tls_port, "pipeline_pid": pipeline.pid}))
        await stop.wait()
        started = time.monotonic()
        pipeline.send_signal(signal.SIGTERM)
        code = await loop.run_in_executor(None, pipeline.wait)
        (directory / "exit.json").write_text(json.dumps({"code": code, "seconds": time.monotonic() - started}))
        relay.close()
        return 0

    return asyncio.run(run())


if __name__ == "__main__":
    sys.exit(main(sys.argv[1]))
