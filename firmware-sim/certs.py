"""The simulated PLC's certificates come from the gateway's own maker (``saltgw certs``):
one definition, in gateway/certs.py."""

from gateway.certs import CertificatePair, make_certificate, write_certificate

__all__ = ["CertificatePair", "make_certificate", "write_certificate"]
