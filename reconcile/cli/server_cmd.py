"""`reconcile apiserver`: run the API server in the foreground."""

from __future__ import annotations

import click

# small and free of heavy imports: the in-flight flags show its defaults without loading the server
from reconcile.api import flowcontrol


def _names(text: str) -> tuple[str, ...]:
    return tuple(part.strip() for part in text.split(",") if part.strip())


@click.command()
@click.option("--etcd", "etcd", required=True, help="etcd endpoint(s), comma-separated (http://127.0.0.1:2379).")
@click.option("--port", type=int, default=6443, show_default=True)
@click.option("--host", default="127.0.0.1", show_default=True)
@click.option("--etcd-prefix", default="/registry", show_default=True, help="Key prefix, so clusters can share an etcd.")
@click.option("--etcd-cacert", default=None, help="CA bundle for an etcd served over TLS.")
@click.option("--etcd-cert", default=None, help="Client certificate for etcd.")
@click.option("--etcd-key", default=None, help="Client key for etcd.")
@click.option("--tls-cert-file", default=None, type=click.Path(exists=True, dir_okay=False),
              help="Serving certificate (PEM). When given, the server speaks HTTPS only.")
@click.option("--tls-private-key-file", default=None, type=click.Path(exists=True, dir_okay=False),
              help="Private key of --tls-cert-file.")
@click.option("--client-ca-file", default=None, type=click.Path(exists=True, dir_okay=False),
              help="CA bundle: a client certificate it signed authenticates as CN (user) and O (groups). "
                   "Requests without one fall through to tokens, then to --anonymous-auth.")
@click.option("--bookmark-interval", type=float, default=30.0, show_default=True,
              help="Seconds between BOOKMARK events on idle watches that allow them.")
@click.option("--encryption-provider-config", default=None, type=click.Path(dir_okay=False),
              help="An EncryptionConfiguration file (apiserver.config.k8s.io/v1): the resources encrypted in "
                   "etcd and their providers (aesgcm, aescbc, identity). Off when not given.")
@click.option("--audit-policy-file", default=None, type=click.Path(dir_okay=False),
              help="An audit.k8s.io/v1 Policy: which requests are audited, at which level. Auditing is off "
                   "without it.")
@click.option("--audit-log-path", default=None,
              help="Where audit events go, as JSON lines ('-': standard output).")
@click.option("--audit-log-maxsize", type=click.IntRange(min=0), default=0, show_default=True,
              help="Megabytes before the audit log is rotated (0: never).")
@click.option("--audit-log-maxbackup", type=click.IntRange(min=0), default=0, show_default=True,
              help="Rotated audit logs kept (0: all).")
@click.option("--audit-log-batch-buffer-size", type=click.IntRange(min=1), default=10_000, show_default=True,
              help="Events queued for the audit writer; when it falls this far behind, events are dropped "
                   "(counted in apiserver_audit_error_total) rather than slowing requests.")
@click.option("--max-requests-inflight", type=click.IntRange(min=0), default=0, show_default=True,
              help="Reads served at once; more get 429 (0: no limit; upstream's default is 400).")
@click.option("--max-mutating-requests-inflight", type=click.IntRange(min=0), default=0, show_default=True,
              help="Writes served at once; more get 429 (0: no limit; upstream's default is 200).")
@click.option("--max-requests-inflight-per-user", type=click.IntRange(min=0), default=0, show_default=True,
              help="Requests one user (not a system component) may have in flight (0: no cap).")
@click.option("--inflight-system-reserved-fraction", type=click.FloatRange(0, 0.9), default=0.25,
              show_default=True, help="Share of each in-flight limit that only system components may use.")
@click.option("--inflight-system-users", default=",".join(flowcontrol.DEFAULT_SYSTEM_USERS), show_default=True,
              help="Users that are system components, comma-separated (a trailing * is a prefix).")
@click.option("--inflight-system-groups", default=",".join(flowcontrol.DEFAULT_SYSTEM_GROUPS), show_default=True,
              help="Groups whose members are system components, comma-separated.")
@click.option("--inflight-exempt-groups", default=",".join(flowcontrol.DEFAULT_EXEMPT_GROUPS), show_default=True,
              help="Groups never limited nor counted (upstream exempts system:masters); empty for none.")
@click.option("--authorization-mode", default="AlwaysAllow", show_default=True,
              help="Authorizers to ask, in order, comma-separated: AlwaysAllow, AlwaysDeny, RBAC "
                   "(system:masters is always allowed).")
@click.option("--token-auth-file", default=None, type=click.Path(exists=True, dir_okay=False),
              help="Static bearer tokens, CSV lines token,user,uid[,\"group1,group2\"]; turns authentication on "
                   "(without any authenticator every caller is an administrator).")
@click.option("--anonymous-auth", type=click.BOOL, default=True, show_default=True,
              help="With authentication on: requests without credentials are system:anonymous (else 401).")
@click.option("--admission-control-config-file", default=None, type=click.Path(exists=True, dir_okay=False),
              help="An AdmissionConfiguration file (PodSecurity defaults and exemptions).")
@click.option("--initial-namespaces-pod-security/--no-initial-namespaces-pod-security", default=False,
              show_default=True,
              help="Create the initial namespaces with Pod Security labels: default enforces baseline, "
                   "kube-system privileged.")
@click.option("--service-account-issuer", "service_account_issuer", multiple=True,
              help="The iss of ServiceAccount tokens (repeatable: the first signs, all are accepted). "
                   "Default https://kubernetes.default.svc.cluster.local.")
@click.option("--service-account-key-file", "service_account_key_file", multiple=True,
              type=click.Path(exists=True, dir_okay=False),
              help="PEM public keys, private keys or certificates that verify ServiceAccount tokens (repeatable; "
                   "turns the ServiceAccount token authenticator on).")
@click.option("--service-account-signing-key-file", default=None, type=click.Path(exists=True, dir_okay=False),
              help="The private key ServiceAccount tokens are signed with: serves TokenRequest "
                   "(serviceaccounts/token) and mounts tokens into pods.")
@click.option("--api-audiences", default="",
              help="Audiences of the API, comma-separated: a token must name one (default: the issuers).")
@click.option("--service-account-max-token-expiration", default="0",
              help="The longest token a TokenRequest gets (a Go duration, e.g. 48h; 0: no limit).")
@click.option("--service-account-extend-token-expiration", type=click.BOOL, default=True, show_default=True,
              help="Projected tokens (3607 s, pod-bound) are valid for a year and warn after their 3607 s.")
@click.option("--enable-bootstrap-token-auth", is_flag=True, default=False,
              help="Bearer tokens <id>.<secret> of bootstrap-token-<id> Secrets (type bootstrap.kubernetes.io/token) "
                   "in kube-system authenticate as system:bootstrap:<id> (groups system:bootstrappers, ...).")
@click.option("--kubelet-client-certificate", default=None, type=click.Path(exists=True, dir_okay=False),
              help="Client certificate the log and exec proxies present to node agents.")
@click.option("--kubelet-client-key", default=None, type=click.Path(exists=True, dir_okay=False),
              help="Private key of --kubelet-client-certificate.")
@click.option("--kubelet-certificate-authority", default=None, type=click.Path(exists=True, dir_okay=False),
              help="CA bundle that node agents' serving certificates are verified with (else not verified).")
@click.option("--service-cluster-ip-range", default="10.96.0.0/12", show_default=True,
              help="CIDR that Services' cluster IPs come from (IPv4, at least 8 addresses); its first address "
                   "is the kubernetes Service's.")
@click.option("--service-node-port-range", default="30000-32767", show_default=True,
              help="Ports NodePort and LoadBalancer Services get node ports from (both ends included).")
@click.option("--advertise-address", default=None,
              help="This server's address in default/kubernetes' endpoints (default: --host, or 127.0.0.1 "
                   "when --host is a wildcard).")
def apiserver(etcd: str, port: int, host: str, etcd_prefix: str, etcd_cacert: str | None,
              etcd_cert: str | None, etcd_key: str | None, tls_cert_file: str | None,
              tls_private_key_file: str | None, client_ca_file: str | None, bookmark_interval: float,
              encryption_provider_config: str | None, audit_policy_file: str | None, audit_log_path: str | None,
              audit_log_maxsize: int, audit_log_maxbackup: int, audit_log_batch_buffer_size: int,
              max_requests_inflight: int, max_mutating_requests_inflight: int,
              max_requests_inflight_per_user: int, inflight_system_reserved_fraction: float,
              inflight_system_users: str, inflight_system_groups: str, inflight_exempt_groups: str,
              authorization_mode: str, token_auth_file: str | None,
              anonymous_auth: bool, admission_control_config_file: str | None,
              initial_namespaces_pod_security: bool, service_account_issuer: tuple[str, ...],
              service_account_key_file: tuple[str, ...], service_account_signing_key_file: str | None,
              api_audiences: str, service_account_max_token_expiration: str,
              service_account_extend_token_expiration: bool, enable_bootstrap_token_auth: bool,
              kubelet_client_certificate: str | None, kubelet_client_key: str | None,
              kubelet_certificate_authority: str | None, service_cluster_ip_range: str,
              service_node_port_range: str, advertise_address: str | None) -> None:
    """Serve the Kubernetes-style REST API from etcd."""
    from reconcile.api import authorizers, satokens, server

    try:
        authorizers.parse_modes(authorization_mode)
    except ValueError as exc:
        raise click.BadParameter(str(exc), param_hint="--authorization-mode") from None

    if bool(tls_cert_file) != bool(tls_private_key_file):
        raise click.UsageError("--tls-cert-file and --tls-private-key-file go together")
    if client_ca_file and not tls_cert_file:
        raise click.UsageError("--client-ca-file needs --tls-cert-file: client certificates come over TLS")
    try:
        max_expiration = satokens.parse_duration(service_account_max_token_expiration)
    except ValueError as exc:
        raise click.BadParameter(str(exc), param_hint="--service-account-max-token-expiration") from None
    if max_expiration and max_expiration < satokens.MIN_EXPIRATION:
        raise click.BadParameter("must be at least 10m", param_hint="--service-account-max-token-expiration")
    key_files = tuple(f for value in service_account_key_file for f in _names(value))
    if service_account_signing_key_file and not key_files:
        raise click.UsageError("--service-account-signing-key-file needs --service-account-key-file (the keys "
                               "that verify tokens), as upstream")
    issuers = tuple(i for value in service_account_issuer for i in _names(value))
    config = server.ApiConfig(
        etcd_endpoints=[e.strip() for e in etcd.split(",") if e.strip()],
        etcd_prefix=etcd_prefix,
        etcd_cacert=etcd_cacert,
        etcd_cert=etcd_cert,
        etcd_key=etcd_key,
        tls_cert_file=tls_cert_file,
        tls_private_key_file=tls_private_key_file,
        client_ca_file=client_ca_file,
        bookmark_interval=bookmark_interval,
        encryption_provider_config=encryption_provider_config,
        audit_policy_file=audit_policy_file,
        audit_log_path=audit_log_path,
        audit_log_maxsize=audit_log_maxsize,
        audit_log_maxbackup=audit_log_maxbackup,
        audit_log_batch_buffer_size=audit_log_batch_buffer_size,
        inflight=flowcontrol.Settings(
            max_read_only=max_requests_inflight,
            max_mutating=max_mutating_requests_inflight,
            max_per_user=max_requests_inflight_per_user,
            system_reserved_fraction=inflight_system_reserved_fraction,
            system_users=_names(inflight_system_users),
            system_groups=_names(inflight_system_groups),
            exempt_groups=_names(inflight_exempt_groups),
        ),
        authorization_mode=authorization_mode,
        token_auth_file=token_auth_file,
        anonymous_auth=anonymous_auth,
        admission_config_file=admission_control_config_file,
        pod_security_initial_labels=initial_namespaces_pod_security,
        service_accounts=satokens.Settings(
            issuers=issuers, key_files=key_files, signing_key_file=service_account_signing_key_file,
            api_audiences=_names(api_audiences), max_expiration=max_expiration,
            extend_expiration=service_account_extend_token_expiration),
        enable_bootstrap_token_auth=enable_bootstrap_token_auth,
        kubelet_client_certificate=kubelet_client_certificate,
        kubelet_client_key=kubelet_client_key,
        kubelet_certificate_authority=kubelet_certificate_authority,
        service_cluster_ip_range=service_cluster_ip_range,
        service_node_port_range=service_node_port_range,
        advertise_address=advertise_address or (host if host not in ("0.0.0.0", "::", "") else "127.0.0.1"),
        secure_port=port,
    )
    try:
        server.serve(config, host=host, port=port)
    except server.StartupError as exc:
        raise click.ClickException(str(exc)) from None
