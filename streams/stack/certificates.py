"""A certificate authority and one server certificate, made once per server home, for the local stack's
TLS (Elasticsearch's HTTP port, Kafka's SASL_SSL listener). Clients trust the CA file.

Files in the directory: `ca.crt` (the CA, given to clients), `node.crt` (the server's certificate for
the host, 127.0.0.1 and localhost), `node.key` (its PKCS#8 key, readable by the owner alone) and
`node.pem` (key and certificate chain in one file, the form Kafka's PEM key store reads).
"""

from __future__ import annotations

import datetime
import ipaddress
from dataclasses import dataclass
from pathlib import Path

from streams.stack.runner import write_private


@dataclass(frozen=True)
class Certificates:
    ca: Path
    cert: Path
    key: Path
    key_and_chain: Path


def ensure(directory: Path, host: str) -> Certificates:
    """The directory's CA and server certificate for `host`, made now if absent (or made for another host)."""
    from cryptography import x509
    from cryptography.hazmat.primitives import hashes, serialization
    from cryptography.hazmat.primitives.asymmetric import ec
    from cryptography.x509.oid import NameOID

    made = Certificates(directory / "ca.crt", directory / "node.crt", directory / "node.key", directory / "node.pem")
    if all(path.exists() for path in (made.ca, made.cert, made.key, made.key_and_chain, directory / f"host-{host}")):
        return made
    directory.mkdir(parents=True, exist_ok=True)
    now = datetime.datetime.now(datetime.UTC)
    valid = (now - datetime.timedelta(days=1), now + datetime.timedelta(days=3650))

    ca_key = ec.generate_private_key(ec.SECP256R1())
    ca_name = x509.Name([x509.NameAttribute(NameOID.COMMON_NAME, "streams local stack CA")])
    ca = (
        x509.CertificateBuilder()
        .subject_name(ca_name)
        .issuer_name(ca_name)
        .public_key(ca_key.public_key())
        .serial_number(x509.random_serial_number())
        .not_valid_before(valid[0])
        .not_valid_after(valid[1])
        .add_extension(x509.BasicConstraints(ca=True, path_length=0), critical=True)
        .add_extension(x509.KeyUsage(False, False, False, False, False, True, True, False, False), critical=True)
        .sign(ca_key, hashes.SHA256())
    )
    names: list[x509.GeneralName] = [x509.DNSName("localhost"), x509.IPAddress(ipaddress.ip_address("127.0.0.1"))]
    try:
        names.append(x509.IPAddress(ipaddress.ip_address(host)))
    except ValueError:
        names.append(x509.DNSName(host))
    node_key = ec.generate_private_key(ec.SECP256R1())
    node = (
        x509.CertificateBuilder()
        .subject_name(x509.Name([x509.NameAttribute(NameOID.COMMON_NAME, "streams-local-1")]))
        .issuer_name(ca_name)
        .public_key(node_key.public_key())
        .serial_number(x509.random_serial_number())
        .not_valid_before(valid[0])
        .not_valid_after(valid[1])
        .add_extension(x509.SubjectAlternativeName(list(dict.fromkeys(names))), critical=False)
        .add_extension(x509.BasicConstraints(ca=False, path_length=None), critical=True)
        .sign(ca_key, hashes.SHA256())
    )
    pem = serialization.Encoding.PEM
    key_text = node_key.private_bytes(pem, serialization.PrivateFormat.PKCS8, serialization.NoEncryption()).decode()
    chain = node.public_bytes(pem).decode() + ca.public_bytes(pem).decode()
    write_private(made.key, key_text)
    write_private(made.key_and_chain, key_text + chain)
    made.cert.write_bytes(node.public_bytes(pem))
    made.ca.write_bytes(ca.public_bytes(pem))
    (directory / f"host-{host}").touch()
    return made
