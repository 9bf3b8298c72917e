#!/usr/bin/env python3
"""Render golden Flink custom resources for one cluster using PaaSTA itself.

Usage:
    /path/to/venv/bin/python scripts/paasta_golden.py SOA_DIR CLUSTER > fixtures/golden/CLUSTER.jsonl

Needs a virtualenv with paasta-tools==1.64.0 installed. Nothing here talks to
Kubernetes: the script walks the same path as setup_kubernetes_cr's
reconcile loop (instance loader -> git sha -> format_custom_resource) and
prints, one JSON object per line:

  * every custom resource PaaSTA would create/replace, as plain JSON,
  * {"skip": "svc.inst", ...}          NoDeploymentsAvailable (PaaSTA skips),
  * {"error": "svc.inst", ...}         any other per-instance exception,
  * {"service_error": "svc", ...}      the service's instance files failed to load.

PaaSTA's load_all_configs() would abort the whole run on the first broken
YAML file; here loading is isolated per service so one bad file only shows
up as a service_error line.

The system config written below must stay equivalent to
fixtures/flink-gitops.yaml (the reconciler's own config).
"""
import json
import os
import shutil
import sys
import tempfile

REGISTRY = "docker-paasta.example.com:443"
CRD_PREFIXES = ("flink", "flinkeks")


def build_system_config(cluster):
    crds = [
        {
            "file_prefix": prefix,
            "group": "yelp.com",
            "version": "v1alpha1",
            "kube_kind": {"singular": "Flink", "plural": "flinks"},
        }
        for prefix in CRD_PREFIXES
    ]
    return {
        "cluster": cluster,
        "docker_registry": REGISTRY,
        "dashboard_links": {
            "norcal-devc": {"Flink": "http://flink.norcal-devc.example.com"}
        },
        "cr_owners": {"flink": "stream-processing"},
        "auto_config_instance_types_enabled": {"flink": True, "flinkeks": True},
        "kubernetes_custom_resources": crds,
    }


def check_yaml_merge_order():
    """Refuse to run on a PyYAML whose `<<: [*a, *b]` lets the LAST map win.

    PyYAML 6.0.4 (the merge-key DoS fix, yaml/pyyaml#937) made list merges
    last-wins for keys longer than one character (yaml/pyyaml#953). PaaSTA
    pins pyyaml 6.0.1 and every release up to 6.0.3 is first-wins, as the
    YAML merge spec says, so golden files rendered on 6.0.4 would not match
    production PaaSTA.
    """
    import service_configuration_lib
    import yaml

    doc = "a: &a {merge_key: first}\nb: &b {merge_key: second}\nc: {<<: [*a, *b]}\n"
    got = service_configuration_lib.load_yaml(doc)["c"]["merge_key"]
    if got != "first":
        sys.exit(
            f"paasta_golden: PyYAML {yaml.__version__} resolves `<<: [*a, *b]` "
            "last-wins (yaml/pyyaml#953); install pyyaml==6.0.3 (or PaaSTA's "
            "pinned 6.0.1) in this venv and rerun"
        )


def describe(exc):
    return f"{type(exc).__name__}: {exc}"


def render(soa_dir, cluster):
    # Imported late: paasta_tools.utils reads PAASTA_SYSTEM_CONFIG_DIR at
    # import time.
    import service_configuration_lib
    from paasta_tools import setup_kubernetes_cr
    from paasta_tools.cli.utils import LONG_RUNNING_INSTANCE_TYPE_HANDLERS
    from paasta_tools.kubernetes_tools import load_custom_resource_definitions
    from paasta_tools.utils import NoDeploymentsAvailable
    from paasta_tools.utils import get_git_sha_from_dockerurl
    from paasta_tools.utils import load_service_instance_configs
    from paasta_tools.utils import load_system_paasta_config

    resources, skips, errors, service_errors = [], [], [], []
    crds = load_custom_resource_definitions(load_system_paasta_config())

    for crd in crds:
        prefix = crd.file_prefix
        kind = crd.kube_kind
        namespace = f"paasta-{kind.plural}"
        loader = LONG_RUNNING_INSTANCE_TYPE_HANDLERS[prefix].loader
        is_eks = prefix.endswith("eks")
        # start every CRD pass from an empty parsed-YAML cache
        service_configuration_lib._yaml_cache.clear()

        # like load_all_configs: every directory entry, plain files included
        # (they simply have no instance files and yield nothing)
        for service in sorted(os.listdir(soa_dir)):
            try:
                instances = load_service_instance_configs(
                    service, prefix, cluster, soa_dir
                )
            except Exception as exc:
                service_errors.append(
                    {
                        "service_error": service,
                        "file_prefix": prefix,
                        "why": describe(exc),
                    }
                )
                continue

            for instance, spec in instances.items():
                ident = f"{service}.{instance}"
                try:
                    try:
                        deployment_config = loader(
                            service=service,
                            instance=instance,
                            cluster=cluster,
                            load_deployments=True,
                            soa_dir=soa_dir,
                        )
                    except NoDeploymentsAvailable as exc:
                        skips.append(
                            {"skip": ident, "file_prefix": prefix, "why": str(exc)}
                        )
                        continue
                    sha = get_git_sha_from_dockerurl(
                        deployment_config.get_docker_url(), long=True
                    )
                    body = setup_kubernetes_cr.format_custom_resource(
                        instance_config=spec,
                        service=service,
                        instance=instance,
                        cluster=cluster,
                        kind=kind.singular,
                        version=crd.version,
                        group=crd.group,
                        namespace=namespace,
                        git_sha=sha,
                        is_eks=is_eks,
                    )
                    # round-trip through the same serializer PaaSTA hashes with
                    resources.append(json.loads(json.dumps(body)))
                except Exception as exc:
                    errors.append(
                        {"error": ident, "file_prefix": prefix, "why": describe(exc)}
                    )

    service_configuration_lib._yaml_cache.clear()

    def ident_key(field):
        return lambda o: (o[field], o["file_prefix"], o["why"])

    resources.sort(key=lambda r: (r["metadata"]["namespace"], r["metadata"]["name"]))
    seen = set()
    for r in resources:
        key = (r["metadata"]["namespace"], r["metadata"]["name"])
        if key in seen:
            print(f"paasta_golden: WARNING duplicate resource {key}", file=sys.stderr)
        seen.add(key)
    skips.sort(key=ident_key("skip"))
    errors.sort(key=ident_key("error"))
    service_errors.sort(key=ident_key("service_error"))
    return resources, skips, errors, service_errors


def main(argv):
    if len(argv) != 3:
        print(__doc__, file=sys.stderr)
        return 2
    # Used exactly as given: PaaSTA embeds it in some messages (e.g. the
    # missing deployments.json skip), so run from the repo root with the
    # relative path fixtures/soa-configs to keep golden files portable.
    soa_dir = argv[1]
    cluster = argv[2]
    if not os.path.isdir(soa_dir):
        print(f"paasta_golden: {soa_dir} is not a directory", file=sys.stderr)
        return 2

    config_dir = tempfile.mkdtemp(prefix="paasta-golden-")
    try:
        with open(os.path.join(config_dir, "system.json"), "w") as f:
            json.dump(build_system_config(cluster), f)
        os.environ["PAASTA_SYSTEM_CONFIG_DIR"] = config_dir

        import logging

        logging.disable(logging.CRITICAL)
        check_yaml_merge_order()
        groups = render(soa_dir, cluster)
    finally:
        shutil.rmtree(config_dir, ignore_errors=True)

    for group in groups:
        for obj in group:
            sys.stdout.write(json.dumps(obj, sort_keys=True) + "\n")
    resources, skips, errors, service_errors = groups
    print(
        f"paasta_golden: {cluster}: {len(resources)} resources, {len(skips)} skips, "
        f"{len(errors)} errors, {len(service_errors)} service_errors",
        file=sys.stderr,
    )
    return 0


if __name__ == "__main__":
    sys.exit(main(sys.argv))
