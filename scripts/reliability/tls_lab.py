"""The encrypted transports on the lab: test certificates made on the spot (never
committed), and Unbound serving DNS over TLS and DNS over HTTPS as the reference.

- :func:`make_certificates`: a throw-away certificate authority and a server certificate
  it signs, with the name and address the lab uses (``dns.lab.test``, 127.0.0.1), as PEM
  files: what the tests, the reliability scripts and the benchmarks give
  ``--tls-certificate`` and ``--tls-key``, and give clients (kdig ``+tls-ca``, curl
  ``--cacert``, the resolver's ``tls-ca-file``) as the authority to trust.
  Elliptic-curve P-256 keys: quick to make.
- :class:`EncryptedUnbound`: the lab's Unbound (resolver.lab.unbound) with DoT and DoH
  on two more ports (``tls-port``, ``https-port``, ``tls-service-pem``,
  ``tls-service-key``: Unbound's names for ours).
"""

from __future__ import annotations

import datetime
import ipaddress
from dataclasses import dataclass
from pathlib import Path

from cryptography import x509
from cryptography.hazmat.primitives import hashes, serialization
from cryptography.hazmat.primitives.asymmetric import ec
from cryptography.x509.oid import ExtendedKeyUsageOID, NameOID

from resolver.lab.unbound import UnboundProcess, free_port

SERVER_NAME = "dns.lab.test"  # the name clients authenticate the lab's servers by


@dataclass(frozen=True)
class CertificateFiles:
    """PEM files: the authority's certificate, the server's certificate chain and key."""

    ca: Path
    certificate: Path
    key: Path


def _name(common: str) -> x509.Name:
    return x509.Name([x509.NameAttribute(NameOID.COMMON_NAME, common)])


def _key_pem(key: ec.EllipticCurvePrivateKey) -> bytes:
    return key.private_bytes(
        serialization.Encoding.PEM,
        serialization.PrivateFormat.PKCS8,
        serialization.NoEncryption(),
    )


def make_certificates(
    directory: Path,
    names: tuple[str, ...] = (SERVER_NAME,),
    addresses: tuple[str, ...] = ("127.0.0.1",),
    *,
    valid_days: int = 2,
    expired: bool = False,
    prefix: str = "",
) -> CertificateFiles:
    """A new authority and a server certificate for ``names`` and ``addresses`` under
    ``directory`` (``prefix`` before the file names, to keep several sets apart).
    ``expired``: the server certificate's validity ended yesterday."""
    directory.mkdir(parents=True, exist_ok=True)
    now = datetime.datetime.now(datetime.UTC)
    ca_key = ec.generate_private_key(ec.SECP256R1())
    ca_name = _name(f"resolver test authority {prefix or 'lab'}")
    ca_cert = (
        x509.CertificateBuilder()
        .subject_name(ca_name)
        .issuer_name(ca_name)
        .public_key(ca_key.public_key())
        .serial_number(x509.random_serial_number())
        .not_valid_before(now - datetime.timedelta(hours=1))
        .not_valid_after(now + datetime.timedelta(days=valid_days))
        .add_extension(x509.BasicConstraints(ca=True, path_length=0), critical=True)
        .add_extension(
            x509.KeyUsage(
                digital_signature=True,
                content_commitment=False,
                key_encipherment=False,
                data_encipherment=False,
                key_agreement=False,
                key_cert_sign=True,
                crl_sign=True,
                encipher_only=False,
                decipher_only=False,
            ),
            critical=True,
        )
        .add_extension(x509.SubjectKeyIdentifier.from_public_key(ca_key.public_key()), False)
        .sign(ca_key, hashes.SHA256())
    )
    key = ec.generate_private_key(ec.SECP256R1())
    start, end = now - datetime.timedelta(hours=1), now + datetime.timedelta(days=valid_days)
    if expired:
        start, end = now - datetime.timedelta(days=3), now - datetime.timedelta(days=1)
    alternative: list[x509.GeneralName] = [x509.DNSName(name) for name in names]
    alternative += [x509.IPAddress(ipaddress.ip_address(a)) for a in addresses]
    cert = (
        x509.CertificateBuilder()
        .subject_name(_name(names[0] if names else addresses[0]))
        .issuer_name(ca_name)
        .public_key(key.public_key())
        .serial_number(x509.random_serial_number())
        .not_valid_before(start)
        .not_valid_after(end)
        .add_extension(x509.SubjectAlternativeName(alternative), critical=False)
        .add_extension(x509.BasicConstraints(ca=False, path_length=None), critical=True)
        .add_extension(x509.ExtendedKeyUsage([ExtendedKeyUsageOID.SERVER_AUTH]), critical=False)
        .add_extension(
            x509.AuthorityKeyIdentifier.from_issuer_public_key(ca_key.public_key()), False
        )
        .sign(ca_key, hashes.SHA256())
    )
    files = CertificateFiles(
        directory / f"{prefix}ca.pem",
        directory / f"{prefix}server.pem",
        directory / f"{prefix}server.key",
    )
    files.ca.write_bytes(ca_cert.public_bytes(serialization.Encoding.PEM))
    files.certificate.write_bytes(cert.public_bytes(serialization.Encoding.PEM))
    files.key.write_bytes(_key_pem(key))
    files.key.chmod(0o600)
    return files


class EncryptedUnbound(UnboundProcess):
    """Unbound with DoT and DoH on two more ports of 127.0.0.1, and ``extra`` lines (a
    ``forward-zone:``, say) after its ``server:`` clause."""

    def __init__(
        self,
        workdir: Path,
        hints: Path,
        port: int,
        certificates: CertificateFiles,
        extra: str = "",
        cache_entries: int = 0,
    ) -> None:
        super().__init__(workdir, hints, port, cache_entries=cache_entries)
        self.certificates = certificates
        self.tls_port, self.https_port = free_port(), free_port()
        self.extra = extra

    def command(self) -> list[str]:
        command = super().command()
        conf = self.workdir / "unbound.conf"
        tls = (
            f"    interface: 127.0.0.1@{self.tls_port}\n"
            f"    interface: 127.0.0.1@{self.https_port}\n"
            f"    tls-port: {self.tls_port}\n"
            f"    https-port: {self.https_port}\n"
            f'    tls-service-pem: "{self.certificates.certificate}"\n'
            f'    tls-service-key: "{self.certificates.key}"\n'
        )
        text = conf.read_text().replace("server:\n", "server:\n" + tls, 1)
        conf.write_text(text.replace("remote-control:\n", self.extra + "remote-control:\n", 1))
        return command


def main(argv: list[str] | None = None) -> int:
    """``python -m scripts.reliability.tls_lab DIRECTORY``: a test authority and a server
    certificate for ``dns.lab.test`` and 127.0.0.1 there (ca.pem, server.pem, server.key)."""
    import argparse

    parser = argparse.ArgumentParser(description=main.__doc__)
    parser.add_argument("directory", type=Path)
    made = make_certificates(parser.parse_args(argv).directory)
    print(f"authority {made.ca}\ncertificate {made.certificate}\nkey {made.key}")
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
