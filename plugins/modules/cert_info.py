#!/usr/bin/python
# -*- coding: utf-8 -*-
# Copyright: opsready.operations contributors
# GNU General Public License v3.0+ (see https://www.gnu.org/licenses/gpl-3.0.txt)

from __future__ import annotations

DOCUMENTATION = r'''
---
module: cert_info
short_description: Inventory X.509 certificates from files, globs and live TLS endpoints
version_added: 0.1.0
description:
  - Reads certificates from files and globs (PEM, PEM bundles, DER) and from live TLS endpoints
    (handshake with SNI, leaf certificate), and reports for each one the subject, SANs, issuer,
    serial, validity, days and fraction of the lifetime remaining, key type and size, whether a
    named private key matches, and whether the chain verifies to a CA bundle.
  - Uses the Python C(cryptography) library; nothing is shelled out to C(openssl).
  - Read-only; never reports C(changed).
author: opsready developers (@opsready)
requirements:
  - cryptography >= 42.0 (Python library on the managed host)
options:
  paths:
    description:
      - Certificate files or globs. Every certificate of a bundle is reported (RV(certificates[].index)).
      - A literal path that does not exist is an error (a symlink loop or a link to nothing is named as such);
        a glob may match nothing.
      - Only regular files up to 16 MiB are read (keys up to 1 MiB). A FIFO, a device such as C(/dev/zero),
        a directory or a larger file named literally is an error. What a glob matches but does not read
        (directories, FIFOs, devices, dangling links, symlink loops, and symlinks pointing out of the glob's
        directory that someone other than root could have planted) is listed in RV(errors) with
        C(skipped=true) and does not fail the task.
    type: list
    elements: path
    default: []
  endpoints:
    description: Live TLS endpoints to handshake with; the leaf certificate they serve is reported.
    type: list
    elements: dict
    default: []
    suboptions:
      host:
        description: Host name or address to connect to.
        type: str
        required: true
      port:
        description: TCP port.
        type: int
        default: 443
      server_name:
        description: SNI name to send; defaults to O(endpoints[].host). An empty string sends no SNI.
        type: str
  privatekey_paths:
    description:
      - Map of certificate path to private key path; RV(certificates[].key_matches) tells whether the
        key is the key of the (leaf) certificate in that file.
    type: dict
    default: {}
  privatekey_passphrase:
    description:
      - Passphrase of encrypted private keys in O(privatekey_paths) that have none of their own in
        O(privatekey_passphrases).
    type: str
  privatekey_passphrases:
    description:
      - Map of certificate path (as in O(privatekey_paths)) to the passphrase of that certificate's private key,
        for keys encrypted with different passphrases (the P(opsready.operations.certificates#role) role passes
        each certificate's own). Overrides O(privatekey_passphrase) for those keys.
      - The passphrases are never shown (no_log).
    type: dict
    default: {}
  ca_bundle:
    description:
      - PEM bundle of trusted CA certificates; when set, RV(certificates[].chain_valid) tells whether each
        leaf certificate chains to it (through the other certificates of its own file). Signatures,
        issuer names and validity of every link are checked; host names and key usages are not.
    type: path
  timeout:
    description: Seconds to wait for each endpoint.
    type: float
    default: 10
  on_error:
    description:
      - V(fail) fails the task naming the first unreadable file or unreachable endpoint.
      - V(report) lists them in RV(errors) and reports everything else.
    type: str
    choices: [fail, report]
    default: fail
attributes:
  check_mode:
    description: Read-only; runs the same in check mode.
    support: full
  diff_mode:
    description: Nothing changes, so there is no diff.
    support: none
seealso:
  - module: opsready.operations.cert_renew
'''

EXAMPLES = r'''
- name: Inventory every certificate and what nginx serves
  opsready.operations.cert_info:
    paths:
      - /etc/ssl/certs/app*.pem
      - /etc/nginx/tls/fullchain.pem
    privatekey_paths:
      /etc/nginx/tls/fullchain.pem: /etc/nginx/tls/privkey.pem
    ca_bundle: /etc/ssl/certs/ca-certificates.crt
    endpoints:
      - host: 127.0.0.1
        port: 443
        server_name: app.example.com
  register: inventory

- name: Fail when anything expires within 14 days
  ansible.builtin.assert:
    that: inventory.certificates | selectattr('days_remaining', 'lt', 14) | list | length == 0
'''

RETURN = r'''
certificates:
  description: One entry per certificate found, files first (sorted), then endpoints in order.
  returned: always
  type: list
  elements: dict
  contains:
    source:
      description: The file path or C(host:port) it came from.
      type: str
      sample: /etc/ssl/certs/app.pem
    kind:
      description: V(file) or V(endpoint).
      type: str
    index:
      description: Position in the file (0 is the leaf of a bundle).
      type: int
    format:
      description: V(pem) or V(der) (V(tls) for endpoints).
      type: str
    subject:
      description: Subject in RFC 4514 form.
      type: str
      sample: CN=app.example.com
    common_name:
      description: The subject's common name, or null.
      type: str
    issuer:
      description: Issuer in RFC 4514 form.
      type: str
    subject_alt_names:
      description:
        - SANs as C(DNS:name), C(IP:address), C(email:x), C(URI:x), C(DirName:CN=x), C(Registered ID:1.2.3) and
          C(othername:UPN:user@example.com) (an otherName type not decoded here as C(othername:<OID>:<hex of its DER>)).
      type: list
      elements: str
      sample: [DNS:app.example.com, IP:127.0.0.1]
    serial:
      description: Serial number in upper-case hex (as C(openssl x509 -serial) prints it).
      type: str
      sample: 3A0F9C
    not_before:
      description: Start of validity (UTC, ISO 8601).
      type: str
    not_after:
      description: End of validity (UTC, ISO 8601).
      type: str
      sample: '2027-01-01T00:00:00.000000Z'
    days_remaining:
      description: Days until not_after (negative when expired).
      type: float
      sample: 41.5
    lifetime_remaining:
      description: Fraction of the lifetime remaining, 0 to 1.
      type: float
      sample: 0.46
    expired:
      description: Whether not_after is past.
      type: bool
    not_yet_valid:
      description: Whether not_before is in the future.
      type: bool
    key_type:
      description:
        - V(rsa), V(rsa-pss) (an RSA key restricted to PSS signatures, id-RSASSA-PSS), V(ec), V(ed25519), V(ed448)
          or V(dsa).
      type: str
    key_size:
      description: Key size in bits.
      type: int
    curve:
      description: Curve name for EC keys.
      type: str
    self_signed:
      description:
        - Whether the certificate is signed by its own key. Decided by names and key identifiers plus the
          signature (SHA-1 included) where this host can check it; RV(certificates[].self_signed_reason) says which.
      type: bool
    self_signed_reason:
      description: How RV(certificates[].self_signed) was decided.
      type: str
      sample: issuer equals subject and the SHA-1 signature verifies with its own key
    fingerprint_sha256:
      description: SHA-256 fingerprint (hex).
      type: str
    key_matches:
      description: Whether the key named in O(privatekey_paths) matches; null when none was named.
      type: bool
    chain_valid:
      description: Whether the certificate verifies to O(ca_bundle); null without O(ca_bundle).
      type: bool
    chain_reason:
      description: Why the chain verifies or not.
      type: str
errors:
  description:
    - Files or endpoints that could not be read (only with O(on_error=report)), and glob matches that were
      not read (always, with C(skipped=true)).
  returned: always
  type: list
  elements: dict
  sample: [{"source": "/etc/ssl/certs/broken.pem", "msg": "... is neither a PEM nor a DER certificate ..."}]
'''

from ansible.module_utils.basic import AnsibleModule

# first of the collection: every module_utils file below compiles once on the target (common/compile_once.py)
from ansible_collections.opsready.operations.plugins.module_utils.common import compile_once  # noqa: F401  # pylint: disable=unused-import
from ansible_collections.opsready.operations.plugins.module_utils.common.errors import no_path_info
from ansible_collections.opsready.operations.plugins.module_utils.common import crypto_guard
from ansible_collections.opsready.operations.plugins.module_utils.certs import inventory
from ansible_collections.opsready.operations.plugins.module_utils.common.errors import OpsReadyError


def main():
    module = AnsibleModule(
        argument_spec=dict(
            paths=dict(type='list', elements='path', default=[]),
            endpoints=dict(type='list', elements='dict', default=[], options=dict(
                host=dict(type='str', required=True),
                port=dict(type='int', default=443),
                server_name=dict(type='str'),
            )),
            privatekey_paths=dict(type='dict', default={}, no_log=False),
            privatekey_passphrase=dict(type='str', no_log=True),
            privatekey_passphrases=dict(type='dict', default={}, no_log=True),
            ca_bundle=dict(type='path'),
            timeout=dict(type='float', default=10),
            on_error=dict(type='str', choices=['fail', 'report'], default='fail'),
        ),
        supports_check_mode=True,
    )
    no_path_info(module)
    crypto_guard.require(module, crypto_guard.CERTS_MINIMUM, 'cert_info')
    p = module.params
    if not p['paths'] and not p['endpoints']:
        module.fail_json(msg='Nothing to inspect: give paths and/or endpoints.')
    try:
        certificates, errors = inventory.collect(
            p['paths'], p['endpoints'], privatekey_paths=p['privatekey_paths'],
            passphrase=p['privatekey_passphrase'], passphrases=p['privatekey_passphrases'], ca_bundle=p['ca_bundle'],
            timeout=p['timeout'],
            stop_on_error=p['on_error'] == 'fail')
    except OpsReadyError as exc:
        module.fail_json(certificates=[], errors=[], **exc.as_fail_kwargs())
    module.exit_json(changed=False, certificates=certificates, errors=errors)


if __name__ == '__main__':
    main()
