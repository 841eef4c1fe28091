#!/usr/bin/python
# -*- coding: utf-8 -*-
# Copyright: opsready.operations contributors
# GNU General Public License v3.0+ (see https://www.gnu.org/licenses/gpl-3.0.txt)

from __future__ import annotations

DOCUMENTATION = r'''
---
module: cert_renew
short_description: Renew key and certificate in a renewal window; atomic swap, previous pair kept, rollback
version_added: 0.1.0
description:
  - Renews the certificate O(path) and its key O(privatekey_path) when it is due, which is when less
    than one third of its lifetime remains (certbot's rule), when fewer than O(renew_before_days)
    days remain if that is set, when it is expired, or always with O(force).
  - A new private key is generated (of the live key's type and size by default, RSA 4096 for a first
    certificate, or the RSA or EC P-256 / P-384 key O(key_type) asks for), a CSR keeps the subject
    and SANs of the current certificate unless O(common_name) / O(subject_alt_names) are given, and
    it is signed by a local CA (O(ca_cert), O(ca_key)) or self-signed (O(self_signed)).
  - OCSP must-staple (the TLS Feature extension) of the current certificate is kept - in the CSR, the
    certificate a local CA or self-signing issues, and the ACME order; a certificate installed with
    O(install) or issued by an ACME CA without it is swapped in with a warning.
  - A certificate file that also holds the private key (a combined PEM, as haproxy's C(crt)) is written
    back combined, with the new key, and never more open than 0640 (as the key file); O(privatekey_path)
    still names the key's own file, which gets the same key.
  - For an external CA, O(csr_only) writes the new key as C(<privatekey_path>.pending) (0600) and a CSR;
    a later run with O(install) swaps in the issued certificate with that key.
  - Before anything is swapped, the new pair must pass three checks, else the task fails and nothing
    on disk changes - the key matches the certificate, the chain verifies to O(ca_cert) (or to itself
    when self-signed), and the validity covers now. A certificate issued elsewhere (O(install), O(acme)) must
    also cover every name of the live certificate (or of O(subject_alt_names)) and keep its extended key usages
    (serverAuth when it had none), digitalSignature in its key usage, and not be a CA certificate.
  - The key is replaced before the certificate. A run killed between the two leaves a pair no service can load; the
    next run finds the kept pair that explains it, puts it back (with a warning, C(changed)), then decides as usual.
    A key that does not match its certificate for another reason is reported in a warning.
  - Every run (due or not, check mode naming only) removes the hidden staged files a run killed before its
    renames left beside the pair (one beside the key holds a new private key), older than 15 minutes; see
    RV(removed_staged_files).
  - The previous certificate and key are kept as C(<name>.<UTC stamp>.cert.bak) / C(.key.bak) (key 0600)
    next to the files or in O(backup_dir); the new ones are written atomically (temp file, fsync,
    rename) with the owner, group and mode of the files they replace. O(rollback) puts the newest
    kept pair back (the rejected pair is kept as C(.rejected)).
  - Every file is written relative to its directory opened once - created exclusively, mode and owner
    set on the open file, renamed into place - so the key is never written through a symlink, and reads
    refuse FIFOs, devices and files over 16 MiB.
  - Uses the Python C(cryptography) library; nothing is shelled out to C(openssl).
author: opsready developers (@opsready)
requirements:
  - cryptography >= 42.0 (Python library on the managed host)
  - acme (Python library, certbot's) on the managed host for O(acme); dnspython for O(acme.challenge=dns-01)
options:
  path:
    description: The certificate file (PEM). The first certificate of the file is the one renewed.
    type: path
    required: true
  privatekey_path:
    description:
      - Its private key file. Written as PKCS#8 PEM, unencrypted unless O(privatekey_passphrase) is given (see
        O(privatekey_cipher)), mode 0600. The mode of the key it replaces is kept when it is stricter or gives
        its group read access only (0640, as Debian's C(ssl-cert) group); a key others could read is replaced 0600
        with a warning.
    type: path
    required: true
  privatekey_passphrase:
    description:
      - Passphrase of the private key at O(privatekey_path) (and of the pending key O(csr_only) wrote) when it is
        encrypted. Needed by O(install) with a certificate issued for the live key, and to find the live
        certificate in a file of several. An unencrypted key is read as it is.
      - With the default O(privatekey_cipher), the new key (and the pending key) is encrypted with it as well.
      - Never passed to a command, logged or returned.
    type: str
  privatekey_cipher:
    description:
      - How the new private key is written (community.crypto's C(cipher)). V(auto) encrypts it with
        O(privatekey_passphrase), using the best encryption the cryptography library offers; V(none) writes it
        unencrypted, protected by its file mode only.
      - Default V(auto) when O(privatekey_passphrase) is given, else V(none). Replacing an encrypted key with an
        unencrypted one warns unless V(none) is given.
    type: str
    choices: [auto, none]
  ca_cert:
    description:
      - The local CA certificate (PEM; the first certificate signs, the rest of the bundle is trusted too).
      - With O(install), the CA bundle the issued certificate must verify to.
    type: path
  ca_key:
    description: The local CA private key. Required with O(ca_cert) unless O(install) or O(csr_only).
    type: path
  ca_key_passphrase:
    description: Passphrase of O(ca_key).
    type: str
  self_signed:
    description:
      - Self-sign the new certificate (no CA). Must be explicit so that a CA-issued certificate is never
        silently replaced by a self-signed one.
    type: bool
    default: false
  renew_before_days:
    description: Renew when fewer than this many days remain. Unset uses the one-third-of-lifetime rule.
    type: float
  force:
    description: Renew even when not due.
    type: bool
    default: false
  key_type:
    description:
      - Type of the new private key.
      - When not set, the type of the live certificate's key (an EC certificate stays EC, since a service whose
        cipher list is ECDSA only would not serve an RSA one); C(rsa) for a first certificate.
    type: str
    choices: [rsa, ec]
  key_size:
    description:
      - RSA key size in bits.
      - When not set, the size of the live RSA key (the next supported size up for a smaller one); 4096 otherwise.
    type: int
    choices: [2048, 3072, 4096]
  curve:
    description:
      - EC curve (P-256 or P-384).
      - When not set, the curve of the live EC key (P-384 for one not supported here); C(secp256r1) otherwise.
    type: str
    choices: [secp256r1, secp384r1]
  common_name:
    description:
      - New subject common name; other subject attributes are kept. Required when O(path) does not exist yet
        (first issuance).
    type: str
  subject_alt_names:
    description:
      - New SANs (C(DNS:name), C(IP:address), C(email:x), C(URI:x); a bare value is an IP or a DNS name).
        Unset keeps the current SANs.
    type: list
    elements: str
  valid_days:
    description:
      - Lifetime of the new certificate in days. Unset keeps the lifetime of the current one (365 for a
        first issuance). Never extends past the CA's own expiry.
    type: int
  include_chain:
    description:
      - Append the O(ca_cert) bundle after the new certificate in O(path) (a full chain file), the issuer first.
      - A certificate file that already holds a chain (the certificate followed by others) gets the O(ca_cert) bundle
        after the new certificate also when this is false, so that a full chain file stays one.
    type: bool
    default: false
  backup_dir:
    description: Where previous pairs are kept. Unset keeps the certificate's next to it and the key's next to the key.
    type: path
  keep_backups:
    description: Keep at most this many previous pairs (the newest); V(0) keeps all.
    type: int
    default: 5
  csr_only:
    description:
      - When due, write a new key to C(<privatekey_path>.pending) and a CSR to O(csr_path) for an external
        CA; nothing is swapped.
    type: bool
    default: false
  csr_path:
    description: Where O(csr_only) writes the CSR. Defaults to C(<path>.csr).
    type: path
  install:
    description:
      - A certificate issued by an external CA (PEM, optionally followed by its chain) to swap in with the
        pending key (or the current key it was issued for). Requires O(ca_cert) to verify it.
      - The file is written re-encoded as PEM, the certificate of the key first, then its issuers in order; a
        private key, text or anything else in the file is not copied.
      - Refused, nothing swapped, when O(ca_cert) holds a root and the file lacks an intermediate between the
        certificate and that root, or when the certificate does not cover every name of the live certificate
        (or of O(subject_alt_names) when given).
    type: path
  rollback:
    description: Put the newest kept pair back in place (after a failed probe). No-op when it already is.
    type: bool
    default: false
  acme:
    description:
      - Renew from an ACME CA (RFC 8555 - Let's Encrypt, ZeroSSL, step-ca, Vault PKI, Boulder, pebble) instead of a
        local CA. The new key is generated here, the CA validates the names by HTTP-01 or DNS-01, the returned chain
        is checked and swapped in like any other renewal (previous pair kept, O(rollback) works).
      - Due when the CA's ACME Renewal Information (RFC 9773) window says so, else by the one-third-of-lifetime rule or
        O(renew_before_days). Not due means no request to the CA at all - the ARI answer is kept in
        C(<path>.acme.json) until the Retry-After the CA gave. Check mode never contacts the CA.
      - Cannot be combined with O(ca_cert), O(self_signed), O(csr_only) or O(install).
      - Uses the C(acme) Python library (the one certbot is built on) on the managed host; DNS-01 also needs
        C(dnspython).
    type: dict
    suboptions:
      directory_url:
        description:
          - The ACME directory. Let's Encrypt production is U(https://acme-v02.api.letsencrypt.org/directory),
            staging (test first - untrusted certificates, high limits) U(https://acme-staging-v02.api.letsencrypt.org/directory).
        type: str
        required: true
      account_key_path:
        description:
          - The account key (PEM). Created (EC P-256, 0600) when missing, reused after. Defaults to
            C(<privatekey_path directory>/acme-account.<CA host>.key) - one account per CA for all
            certificates in that directory.
        type: path
      account_key_content:
        description: The account key itself (PEM), for example from Vault; never written to disk, never returned.
        type: str
      contact:
        description: Contact addresses for the account (C(mailto:) is added to a bare address).
        type: list
        elements: str
        default: []
      agree_tos:
        description: Agree to the CA's terms of service (required by CAs that publish them, such as Let's Encrypt).
        type: bool
        default: false
      eab_kid:
        description: External Account Binding key id, for CAs that require it (ZeroSSL, Google, Sectigo, step-ca).
        type: str
      eab_hmac_key:
        description: External Account Binding HMAC key (base64url, as the CA gives it).
        type: str
      eab_hmac_algorithm:
        description: MAC algorithm of the binding.
        type: str
        choices: [HS256, HS384, HS512]
        default: HS256
      challenge:
        description:
          - V(http-01) writes the token under O(acme.webroot) (a directory the running web server serves as
            C(/)), or, without a webroot, answers on a built-in listener on O(acme.listen_address):O(acme.listen_port)
            for the run only. V(dns-01) adds C(_acme-challenge) TXT records by RFC 2136 dynamic update signed with a
            TSIG key, and is needed for wildcards.
        type: str
        choices: [http-01, dns-01]
        default: http-01
      webroot:
        description:
          - Document root for HTTP-01; C(.well-known/acme-challenge/) is created in it when missing and removed
            after.
        type: path
      listen_address:
        description: Address of the built-in HTTP-01 listener.
        type: str
        default: 0.0.0.0
      listen_port:
        description:
          - Port of the built-in HTTP-01 listener (the CA connects to port 80; another port needs a redirect or a
            test CA).
        type: int
        default: 80
      dns_server:
        description: The primary DNS server that takes the dynamic updates (address or name).
        type: str
      dns_port:
        description: Its port.
        type: int
        default: 53
      dns_zone:
        description: The zone to update. Unset asks O(acme.dns_server) for the SOA of each record name.
        type: str
      dns_ttl:
        description: TTL of the challenge TXT records.
        type: int
        default: 60
      tsig_key_name:
        description: Name of the TSIG key allowed to update the zone.
        type: str
      tsig_secret:
        description: The TSIG key's secret (base64).
        type: str
      tsig_algorithm:
        description: The TSIG key's algorithm.
        type: str
        choices: [hmac-sha256, hmac-sha384, hmac-sha512, hmac-sha224, hmac-sha1]
        default: hmac-sha256
      propagation_servers:
        description:
          - Other servers (C(address) or C(address:port)) that must answer the TXT record before the CA is told to
            check - the zone's secondaries. The primary is always checked.
        type: list
        elements: str
        default: []
      propagation_timeout:
        description: Seconds to wait for the TXT records to be visible on every server.
        type: float
        default: 120
      preferred_chain:
        description:
          - Common name of an issuer in the chain to prefer among the chains the CA offers (alternate chains,
            RFC 8555 7.4.2), as certbot's C(--preferred-chain). Unset, or no chain matching, keeps the default chain.
        type: str
      fullchain:
        description:
          - Write the certificate followed by the chain as the CA returned it to O(path); false writes the leaf only.
        type: bool
        default: true
      ca_bundle:
        description:
          - Trusted roots the issued chain must verify to before it is swapped in (for Let's Encrypt, ISRG Root X1/X2).
            Unset trusts the top certificate of the chain the CA sent over its authenticated HTTPS connection.
        type: path
      tls_ca_bundle:
        description:
          - CA bundle for the HTTPS connection to the ACME server (a private CA's directory). Unset uses the
            system's.
        type: path
      validate_certs:
        description: Verify the ACME server's HTTPS certificate. Never disable it outside a lab.
        type: bool
        default: true
      ari:
        description:
          - Ask the CA for its renewal window (RFC 9773) when it offers one, and name the renewed certificate in the
            new order (C(replaces)).
        type: bool
        default: true
      revoke_replaced:
        description: Revoke the replaced certificate once the new one is in place (key compromise rollover).
        type: bool
        default: false
      revoke_reason:
        description: Reason given with O(acme.revoke_replaced).
        type: str
        choices: [unspecified, key_compromise, superseded, cessation_of_operation]
        default: superseded
      timeout:
        description: Seconds for each HTTP request to the CA.
        type: int
        default: 30
      order_timeout:
        description: Seconds to wait for the CA to validate the challenges and issue the certificate.
        type: int
        default: 180
  owner:
    description:
      - The user who owns the certificate, key, backup or CSR directory when that is not root (a service's
        own directory). Such a directory is refused without this option - its user could plant symlinks or
        swap files while root writes there. With it, every file is written for that user (its primary
        group), the key and kept keys 0600, and no symlink in those directories is followed.
      - That user is trusted with its own files, not with where root writes - a symlink in a directory it
        controls, on the way to these directories (its certificate directory linked to /etc/ssl/private), is
        refused; give the real path.
      - A directory writable by its group or by others (even with the sticky bit) is always refused.
    type: str
extends_documentation_fragment:
  - opsready.operations.check_mode
notes:
  - In check mode nothing is written; RV(certificate) shows the expiry the new certificate would have
    (its serial is only known once it is signed). With C(--diff) the old and new serial and expiry are shown.
  - Two files cannot be renamed in one step - the key is replaced first, then the certificate; if the
    certificate write fails, the previous key is written back before the task fails.
  - Reloading the services and probing them is the job of the C(opsready.operations.certificates) role.
seealso:
  - module: opsready.operations.cert_info
  - module: opsready.operations.file_backup
'''

EXAMPLES = r'''
- name: Renew from the local CA when less than a third of the lifetime remains
  opsready.operations.cert_renew:
    path: /etc/nginx/tls/app.crt
    privatekey_path: /etc/nginx/tls/private/app.key
    ca_cert: /etc/pki/local-ca/ca.crt
    ca_key: /etc/pki/local-ca/ca.key
  notify: Reload nginx

- name: Renew a self-signed EC certificate within 30 days of expiry
  opsready.operations.cert_renew:
    path: /etc/myapp/tls.crt
    privatekey_path: /etc/myapp/tls.key
    self_signed: true
    key_type: ec
    curve: secp384r1
    renew_before_days: 30

- name: External CA, step 1 - new key and CSR when due
  opsready.operations.cert_renew:
    path: /etc/haproxy/tls/site.crt
    privatekey_path: /etc/haproxy/tls/site.key
    csr_only: true
    csr_path: /srv/outbox/site.csr

- name: External CA, step 2 - install what the CA issued
  opsready.operations.cert_renew:
    path: /etc/haproxy/tls/site.crt
    privatekey_path: /etc/haproxy/tls/site.key
    install: /srv/inbox/site.crt
    ca_cert: /etc/ssl/certs/corporate-ca.pem

- name: Install a certificate issued for a live key encrypted with a passphrase (the key stays encrypted)
  opsready.operations.cert_renew:
    path: /etc/postfix/tls/mail.crt
    privatekey_path: /etc/postfix/tls/mail.key
    privatekey_passphrase: "{{ vault_mail_key_passphrase }}"
    install: /srv/inbox/mail.crt
    ca_cert: /etc/ssl/certs/corporate-ca.pem

- name: Renew from Let's Encrypt over HTTP-01 through nginx's document root (ARI-aware)
  opsready.operations.cert_renew:
    path: /etc/nginx/tls/www.crt
    privatekey_path: /etc/nginx/tls/private/www.key
    subject_alt_names: [DNS:www.example.com, DNS:example.com]
    key_type: ec
    acme:
      directory_url: https://acme-v02.api.letsencrypt.org/directory
      contact: [ops@example.com]
      agree_tos: true
      webroot: /var/www/html
  notify: Reload nginx

- name: Wildcard from a CA that requires External Account Binding, DNS-01 via RFC 2136
  opsready.operations.cert_renew:
    path: /etc/haproxy/tls/wild.crt
    privatekey_path: /etc/haproxy/tls/wild.key
    subject_alt_names: ["DNS:*.example.com", DNS:example.com]
    acme:
      directory_url: https://acme.zerossl.com/v2/DV90
      eab_kid: "{{ vault_zerossl_kid }}"
      eab_hmac_key: "{{ vault_zerossl_hmac }}"
      challenge: dns-01
      dns_server: 192.0.2.53
      tsig_key_name: acme-update.
      tsig_secret: "{{ vault_tsig_secret }}"
      propagation_servers: [192.0.2.54]

- name: Roll back to the previous pair
  opsready.operations.cert_renew:
    path: /etc/nginx/tls/app.crt
    privatekey_path: /etc/nginx/tls/private/app.key
    rollback: true
'''

RETURN = r'''
due:
  description: Whether the certificate was due (always true for O(install) of a new certificate).
  returned: success
  type: bool
reason:
  description: Why it was (not) due, in words.
  returned: success
  type: str
  sample: 4.9 days remaining, 5% of the lifetime (renews below one third)
previous:
  description: The certificate found at O(path) before the task (empty when there was none).
  returned: success
  type: dict
  sample: {"serial": "4F3A", "not_after": "2026-12-04T00:00:00.000000Z", "days_remaining": 4.9}
certificate:
  description: The certificate at O(path) after the task (in check mode, what it would be).
  returned: success
  type: dict
  sample: {"serial": "7C21", "not_after": "2027-11-29T00:00:00.000000Z", "days_remaining": 365.0}
backup:
  description: Where the previous pair was kept (C(cert), C(key)); empty when nothing was swapped.
  returned: success
  type: dict
  sample:
    cert: /etc/nginx/tls/app.crt.20261129T004512123456Z.cert.bak
    key: /etc/nginx/tls/private/app.key.20261129T004512123456Z.key.bak
removed_staged_files:
  description:
    - Hidden staged files (C(.<name>.<12 hex>.tmp)) that a killed run left beside the certificate, the key (holding a
      new private key), the pending key or the kept pairs, removed by this run (in check mode, those it would remove),
      with a warning. Only this pair's names, only regular files of the running user with one link, untouched for
      15 minutes (a concurrent run's are younger); links are never followed.
  returned: success
  type: list
  elements: str
  sample: [/etc/nginx/tls/private/.app.key.3f9c0a1b2d4e.tmp]
deleted_backups:
  description: Kept pairs removed by O(keep_backups).
  returned: success
  type: list
  elements: str
csr_path:
  description: The CSR written (or kept) by O(csr_only).
  returned: when O(csr_only)
  type: str
csr:
  description: The CSR in PEM (O(csr_only)).
  returned: when O(csr_only) and a CSR exists
  type: str
pending_privatekey_path:
  description: The pending key for the external CA (O(csr_only)).
  returned: when O(csr_only)
  type: str
acme:
  description:
    - What the ACME issuer did - C(contacted_ca) (false when not due), C(directory_url), C(account_key_path),
      C(account_uri), C(account_created), C(ari) (the CA's window), C(order) (C(uri), C(replaces), C(challenges),
      C(challenges_removed), C(chain)), C(revoked). Never holds a key or secret.
  returned: when O(acme) is set
  type: dict
rolled_back:
  description: Whether O(rollback) put the previous pair back.
  returned: success
  type: bool
restored_from:
  description: The kept pair that O(rollback) restored.
  returned: when O(rollback)
  type: dict
rejected:
  description: Where O(rollback) kept the pair it replaced.
  returned: when O(rollback)
  type: dict
'''

import importlib.util

from ansible.module_utils.basic import AnsibleModule, missing_required_lib

# first of the collection: every module_utils file below compiles once on the target (common/compile_once.py)
from ansible_collections.opsready.operations.plugins.module_utils.common import compile_once  # noqa: F401  # pylint: disable=unused-import
from ansible_collections.opsready.operations.plugins.module_utils.common.errors import no_path_info
from ansible_collections.opsready.operations.plugins.module_utils.common import crypto_guard
from ansible_collections.opsready.operations.plugins.module_utils.certs import acme_renewal, renewal
from ansible_collections.opsready.operations.plugins.module_utils.common.errors import OpsReadyError
from ansible_collections.opsready.operations.plugins.module_utils.common.urlsecrets import url_secrets


def main():
    module = AnsibleModule(
        argument_spec=dict(
            path=dict(type='path', required=True),
            privatekey_path=dict(type='path', required=True, no_log=False),
            privatekey_passphrase=dict(type='str', no_log=True),
            privatekey_cipher=dict(type='str', choices=['auto', 'none']),
            ca_cert=dict(type='path'),
            ca_key=dict(type='path', no_log=False),
            ca_key_passphrase=dict(type='str', no_log=True),
            self_signed=dict(type='bool', default=False),
            renew_before_days=dict(type='float'),
            force=dict(type='bool', default=False),
            key_type=dict(type='str', choices=['rsa', 'ec']),
            key_size=dict(type='int', choices=[2048, 3072, 4096]),
            curve=dict(type='str', choices=['secp256r1', 'secp384r1']),
            common_name=dict(type='str'),
            subject_alt_names=dict(type='list', elements='str'),
            valid_days=dict(type='int'),
            include_chain=dict(type='bool', default=False),
            backup_dir=dict(type='path'),
            keep_backups=dict(type='int', default=5),
            csr_only=dict(type='bool', default=False),
            csr_path=dict(type='path'),
            install=dict(type='path'),
            rollback=dict(type='bool', default=False),
            acme=dict(type='dict', options=dict(
                directory_url=dict(type='str', required=True),
                account_key_path=dict(type='path', no_log=False),
                account_key_content=dict(type='str', no_log=True),
                contact=dict(type='list', elements='str', default=[]),
                agree_tos=dict(type='bool', default=False),
                eab_kid=dict(type='str', no_log=True),
                eab_hmac_key=dict(type='str', no_log=True),
                eab_hmac_algorithm=dict(type='str', choices=['HS256', 'HS384', 'HS512'], default='HS256'),
                challenge=dict(type='str', choices=['http-01', 'dns-01'], default='http-01'),
                webroot=dict(type='path'),
                listen_address=dict(type='str', default='0.0.0.0'),  # nosec B104 # the CA connects from outside
                listen_port=dict(type='int', default=80),
                dns_server=dict(type='str'),
                dns_port=dict(type='int', default=53),
                dns_zone=dict(type='str'),
                dns_ttl=dict(type='int', default=60),
                tsig_key_name=dict(type='str', no_log=False),
                tsig_secret=dict(type='str', no_log=True),
                tsig_algorithm=dict(type='str', default='hmac-sha256',
                                    choices=['hmac-sha256', 'hmac-sha384', 'hmac-sha512', 'hmac-sha224', 'hmac-sha1']),
                propagation_servers=dict(type='list', elements='str', default=[]),
                propagation_timeout=dict(type='float', default=120),
                preferred_chain=dict(type='str'),
                fullchain=dict(type='bool', default=True),
                ca_bundle=dict(type='path'),
                tls_ca_bundle=dict(type='path'),
                validate_certs=dict(type='bool', default=True),
                ari=dict(type='bool', default=True),
                revoke_replaced=dict(type='bool', default=False),
                revoke_reason=dict(type='str', default='superseded',
                                   choices=['unspecified', 'key_compromise', 'superseded', 'cessation_of_operation']),
                timeout=dict(type='int', default=30),
                order_timeout=dict(type='int', default=180),
            ), required_if=[('challenge', 'dns-01', ('dns_server', 'tsig_key_name', 'tsig_secret'))],
                mutually_exclusive=[('account_key_path', 'account_key_content')],
                required_together=[('eab_kid', 'eab_hmac_key')]),
            owner=dict(type='str'),
        ),
        required_by={'ca_key_passphrase': 'ca_key'},  # nosec B105 # an option name, not a password
        required_if=[('include_chain', True, ('ca_cert',)), ('privatekey_cipher', 'auto', ('privatekey_passphrase',))],
        supports_check_mode=True,
    )
    no_path_info(module)
    crypto_guard.require(module, crypto_guard.CERTS_MINIMUM, 'cert_renew')
    p = module.params
    if p['acme']:
        # a directory URL may carry credentials (a proxy's user:password@, a CA's ?token=): starred in every output
        module.no_log_values.update(s for s in url_secrets(p['acme']['directory_url']) if len(s) >= 4)
    # Booleans are set (to false) by roles that pass every option, so exclusivity is checked on truth.
    modes = [name for name in ('csr_only', 'install', 'rollback') if p[name]]
    if len(modes) > 1:
        module.fail_json(msg='csr_only, install and rollback are different actions: choose one, not %s.'
                         % ' and '.join(modes))
    if p['self_signed'] and (p['ca_cert'] or p['csr_only'] or p['install']):
        module.fail_json(msg='self_signed cannot be combined with ca_cert, csr_only or install: choose one issuer.')
    if p['force'] and p['rollback']:
        module.fail_json(msg='force and rollback contradict each other: choose one.')
    if p['install'] is not None and not p['ca_cert']:
        module.fail_json(msg='install needs ca_cert: the CA bundle the issued certificate must verify to.')
    if p['ca_cert'] and not p['ca_key'] and not (p['install'] or p['csr_only'] or p['rollback']):
        module.fail_json(msg='ca_cert is set but ca_key is not: give the CA private key to sign with.')
    if p['valid_days'] is not None and p['valid_days'] <= 0:
        module.fail_json(msg='valid_days must be more than 0, not %d.' % p['valid_days'])
    if p['keep_backups'] < 0:
        module.fail_json(msg='keep_backups must be 0 (keep all) or more, not %d.' % p['keep_backups'])
    if p['acme'] and not p['rollback']:
        clash = [name for name in ('ca_cert', 'ca_key', 'self_signed', 'csr_only', 'install') if p[name]]
        if clash:
            module.fail_json(msg='acme is an issuer of its own: drop %s (or drop acme).' % ', '.join(clash))
        # Looked up, not imported: the ACME library is loaded only when the CA is to be contacted.
        if importlib.util.find_spec('acme') is None or importlib.util.find_spec('josepy') is None:
            module.fail_json(msg=missing_required_lib('acme (the ACME library certbot is built on)'))
        if p['acme']['challenge'] == 'dns-01' and importlib.util.find_spec('dns') is None:
            module.fail_json(msg=missing_required_lib('dnspython (for acme challenge dns-01)'))
    try:
        if p['rollback']:
            result = renewal.rollback(p, module.check_mode)
        elif p['install']:
            result = renewal.install(p, module.check_mode)
        elif p['csr_only']:
            result = renewal.csr_only(p, module.check_mode)
        elif p['acme']:
            result = acme_renewal.acme_renew(p, module.check_mode)
        else:
            result = renewal.renew(p, module.check_mode)
    except OpsReadyError as exc:
        module.fail_json(**exc.as_fail_kwargs())
    except OSError as exc:
        module.fail_json(**renewal.os_failure(p['path'], exc).as_fail_kwargs())
    diff = result.pop('diff')
    if module._diff and result['changed']:
        result['diff'] = diff
    module.exit_json(**result)


if __name__ == '__main__':
    main()
