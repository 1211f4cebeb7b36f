"""The AWS and Kubernetes configs would start: each checked by the validator that would read it.

deploy/ray-cluster.yaml goes through Ray's own cluster-config validator (what `ray up` runs
first). deploy/kuberay.yaml's RayCluster and RayJob go through KubeRay's CRD schemas
(tests/data/kuberay, see SOURCE.md there), made strict the way `kubectl apply` is
(unknown fields rejected); the Deployment's pod template through the same schema's pod
template, the NetworkPolicy's rules through its NetworkPolicyIngressRule. Then the points a
schema cannot see: the ones that made the path fail before (see issue 11).
"""

from __future__ import annotations

import copy
import gzip
import json
import re
import tomllib
from functools import cache
from pathlib import Path
from typing import Any

import jsonschema
import pytest
import yaml

REPO = Path(__file__).resolve().parents[1]
DEPLOY = REPO / "deploy"
SCHEMAS = Path(__file__).resolve().parent / "data" / "kuberay"
VERSION = tomllib.loads((REPO / "pyproject.toml").read_text())["project"]["version"]


# ------------------------------------------------------------------------------ helpers
def _strict(schema: Any) -> Any:
    """The CRD schema as the API server applies it with strict field validation: an object
    with declared properties takes no others (unless it preserves unknown fields)."""
    if isinstance(schema, dict):
        schema = {k: _strict(v) for k, v in schema.items()}
        if (
            "properties" in schema
            and "additionalProperties" not in schema
            and not schema.get("x-kubernetes-preserve-unknown-fields")
        ):
            schema["additionalProperties"] = False
        return schema
    if isinstance(schema, list):
        return [_strict(v) for v in schema]
    return schema


@cache
def _crd(kind: str) -> dict[str, Any]:
    with gzip.open(SCHEMAS / f"{kind}.v1.schema.json.gz", "rt") as f:
        return _strict(json.load(f))


def _errors(schema: dict[str, Any], document: Any) -> list[str]:
    validator = jsonschema.Draft7Validator(schema)
    return [
        f"{'/'.join(map(str, e.absolute_path))}: {e.message}"
        for e in validator.iter_errors(document)
    ]


def _pod_template_schema() -> dict[str, Any]:
    """Kubernetes' PodTemplateSpec, as KubeRay's CRD embeds it (headGroupSpec.template)."""
    return _crd("RayCluster")["properties"]["spec"]["properties"]["headGroupSpec"]["properties"][
        "template"
    ]


def _ingress_rule_schema() -> dict[str, Any]:
    """Kubernetes' NetworkPolicyIngressRule, as KubeRay's CRD embeds it."""
    spec = _crd("RayCluster")["properties"]["spec"]["properties"]
    return spec["networkPolicy"]["properties"]["head"]["properties"]["ingressRules"]["items"]


@pytest.fixture(scope="module")
def kuberay() -> dict[str, dict[str, Any]]:
    docs = [d for d in yaml.safe_load_all((DEPLOY / "kuberay.yaml").read_text()) if d]
    by_kind = {d["kind"]: d for d in docs}
    assert len(by_kind) == len(docs), "one object of each kind"
    return by_kind


@pytest.fixture(scope="module")
def cluster() -> dict[str, Any]:
    return yaml.safe_load((DEPLOY / "ray-cluster.yaml").read_text())


def _cluster_specs(kuberay: dict[str, dict[str, Any]]) -> list[dict[str, Any]]:
    return [kuberay["RayCluster"]["spec"], kuberay["RayJob"]["spec"]["rayClusterSpec"]]


def _images(document: Any) -> list[str]:
    if isinstance(document, dict):
        found = [document["image"]] if isinstance(document.get("image"), str) else []
        return found + [i for v in document.values() for i in _images(v)]
    if isinstance(document, list):
        return [i for v in document for i in _images(v)]
    return []


# ------------------------------------------------------------------- ray-cluster.yaml
def test_ray_cluster_passes_rays_validator(cluster: dict[str, Any]) -> None:
    from ray.autoscaler._private.util import prepare_config, validate_config

    # what `ray up` does first: Ray's AWS defaults merged in, then the schema and its checks
    validate_config(prepare_config(copy.deepcopy(cluster)))


def test_rays_validator_rejects_a_broken_cluster(cluster: dict[str, Any]) -> None:
    """The check above can fail: a misspelt key is refused."""
    from ray.autoscaler._private.util import prepare_config, validate_config

    broken = copy.deepcopy(cluster)
    broken["available_node_types"]["gpu_worker"]["min_worker"] = 2
    with pytest.raises(jsonschema.ValidationError, match="min_worker"):
        validate_config(prepare_config(broken))


def test_ray_cluster_gives_every_node_what_the_job_needs(cluster: dict[str, Any]) -> None:
    nodes = cluster["available_node_types"]
    for name, node in nodes.items():
        config = node["node_config"]
        assert config.get("ImageId", "").startswith("ami-"), f"{name}: no GPU-driver AMI"
        assert "Arn" in config.get("IamInstanceProfile", {}) or "Name" in config.get(
            "IamInstanceProfile", {}
        ), f"{name}: no instance profile, so no S3 credentials"
    workers = [n for k, n in nodes.items() if k != cluster["head_node_type"]]
    assert workers and all(n["min_workers"] >= 1 for n in workers), "jobs size pools at start"
    assert all(n["resources"].get("GPU", 0) >= 1 for n in workers)
    # the code a job runs is its --working-dir, not an editable install made at setup
    commands = json.dumps(
        [cluster.get(k) for k in ("setup_commands", "head_setup_commands", "file_mounts")]
    )
    assert "pip install" not in commands and "storyline" not in commands
    assert "--dashboard-host=0.0.0.0" not in json.dumps(cluster["head_start_ray_commands"])
    starts = cluster["head_start_ray_commands"] + cluster["worker_start_ray_commands"]
    assert sum("--object-store-memory" in c for c in starts) == 2
    assert cluster["docker"]["image"].endswith(f":{VERSION}")


# ------------------------------------------------------------------------ kuberay.yaml
@pytest.mark.parametrize("kind", ["RayCluster", "RayJob"])
def test_kuberay_objects_pass_the_crd_schema(kuberay: dict, kind: str) -> None:
    assert _errors(_crd(kind), kuberay[kind]) == []


def test_the_crd_schema_rejects_a_broken_object(kuberay: dict) -> None:
    """The check above can fail: a misspelt field and a wrong type are refused."""
    broken = copy.deepcopy(kuberay["RayCluster"])
    broken["spec"]["enableInTreeAutoscalling"] = True
    broken["spec"]["workerGroupSpecs"][0]["minReplicas"] = "two"
    errors = _errors(_crd("RayCluster"), broken)
    assert any("enableInTreeAutoscalling" in e for e in errors), errors
    assert any("minReplicas" in e for e in errors), errors


def test_kubernetes_objects_are_well_formed(kuberay: dict) -> None:
    """Deployment, Service, NetworkPolicy: their pod template and rules against the same
    Kubernetes schemas the CRD embeds; the rest structurally."""
    deployment, service = kuberay["Deployment"], kuberay["Service"]
    policy, claim = kuberay["NetworkPolicy"], kuberay["PersistentVolumeClaim"]
    assert deployment["apiVersion"] == "apps/v1" and service["apiVersion"] == "v1"
    assert policy["apiVersion"] == "networking.k8s.io/v1" and claim["apiVersion"] == "v1"
    assert _errors(_pod_template_schema(), deployment["spec"]["template"]) == []
    labels = deployment["spec"]["template"]["metadata"]["labels"]
    selector = deployment["spec"]["selector"]["matchLabels"]
    assert selector.items() <= labels.items(), "the Deployment selects its own pods"
    assert service["spec"]["selector"].items() <= labels.items(), "the Service reaches them"
    container = deployment["spec"]["template"]["spec"]["containers"][0]
    port_names = {p["name"] for p in container["ports"]}
    assert all(p["targetPort"] in port_names for p in service["spec"]["ports"])
    for rule in policy["spec"]["ingress"]:
        assert _errors(_ingress_rule_schema(), rule) == []
    assert policy["spec"]["policyTypes"] == ["Ingress"]
    assert "ReadWriteMany" in claim["spec"]["accessModes"]


def test_the_api_is_its_own_deployment_with_probes(kuberay: dict) -> None:
    pod = kuberay["Deployment"]["spec"]["template"]["spec"]
    (api,) = pod["containers"]
    for probe in ("livenessProbe", "readinessProbe"):
        assert api[probe]["httpGet"]["path"] == "/healthz", probe
    head_service = f"http://{kuberay['RayCluster']['metadata']['name']}-head-svc:8265"
    assert api["command"][api["command"].index("--ray-address") + 1] == head_service
    env = {e["name"]: e for e in api["env"]}
    assert env["RAY_AUTH_MODE"]["value"] == "token"
    secret = kuberay["RayCluster"]["spec"]["authOptions"]["secretName"]
    assert env["RAY_AUTH_TOKEN"]["valueFrom"]["secretKeyRef"]["name"] == secret
    assert pod["securityContext"]["runAsNonRoot"] is True
    head = kuberay["RayCluster"]["spec"]["headGroupSpec"]["template"]["spec"]["containers"]
    assert [c["name"] for c in head] == ["ray-head"], "no API sidecar in the head pod"


def test_ray_clusters_have_what_the_jobs_need(kuberay: dict) -> None:
    for spec in _cluster_specs(kuberay):
        assert spec["enableInTreeAutoscaling"] is True
        assert spec["authOptions"]["mode"] == "token"
        head = spec["headGroupSpec"]["template"]["spec"]
        mounts = {m["mountPath"] for m in head["containers"][0]["volumeMounts"]}
        assert {"/data", "/dev/shm"} <= mounts, "drivers run on the head: they open /data"
        assert head["containers"][0]["resources"]["limits"]["memory"]
        assert "object-store-memory" in spec["headGroupSpec"]["rayStartParams"]
        for pod in [head] + [g["template"]["spec"] for g in spec["workerGroupSpecs"]]:
            shm = [v for v in pod["volumes"] if v["name"] == "dshm"]
            assert shm and shm[0]["emptyDir"]["medium"] == "Memory"
            assert shm[0]["emptyDir"]["sizeLimit"], "/dev/shm sized"
        for group in spec["workerGroupSpecs"]:
            pod = group["template"]["spec"]
            assert group["minReplicas"] >= 1, "jobs size their pool from the workers present"
            assert pod["containers"][0]["resources"]["limits"]["nvidia.com/gpu"] >= 1
            assert any(t["key"] == "nvidia.com/gpu" for t in pod["tolerations"])
            assert pod["nodeSelector"], "GPU pods go to GPU nodes"
            assert "object-store-memory" in group["rayStartParams"]


def test_rayjob_is_bounded(kuberay: dict) -> None:
    spec = kuberay["RayJob"]["spec"]
    assert spec["backoffLimit"] >= 0 and spec["activeDeadlineSeconds"] > 0
    assert spec["shutdownAfterJobFinishes"] is True
    assert spec["entrypoint"].startswith("python -m storyline.deploy.cli extract")


def test_dashboard_is_closed_to_all_but_the_api(kuberay: dict) -> None:
    policy = kuberay["NetworkPolicy"]["spec"]
    ray_labels = policy["podSelector"]["matchLabels"]
    assert ray_labels["ray.io/is-ray-node"] == "yes"
    for spec in _cluster_specs(kuberay):  # the policy covers both clusters' pods
        for pod in [spec["headGroupSpec"]] + spec["workerGroupSpecs"]:
            labels = {**pod["template"]["metadata"]["labels"], "ray.io/is-ray-node": "yes"}
            assert ray_labels.items() <= labels.items()
    api_labels = kuberay["Deployment"]["spec"]["template"]["metadata"]["labels"]
    submitter = kuberay["RayJob"]["spec"]["submitterPodTemplate"]["metadata"]["labels"]
    for rule in policy["ingress"]:
        sources = [s.get("podSelector", {}).get("matchLabels", {}) for s in rule["from"]]
        if rule.get("ports"):
            assert [p["port"] for p in rule["ports"]] == [8265]
            assert any(s.items() <= api_labels.items() for s in sources)
            assert any(s.items() <= submitter.items() for s in sources)
        else:  # all ports: Ray's own pods only, never the API
            assert sources == [ray_labels]
            assert not ray_labels.items() <= api_labels.items()


# -------------------------------------------------------------- image, one for everyone
def test_every_config_runs_the_dockerfiles_image_by_version(
    kuberay: dict, cluster: dict[str, Any]
) -> None:
    images = {*_images(list(kuberay.values())), cluster["docker"]["image"]}
    assert len(images) == 1, images
    (image,) = images
    assert image.endswith(f"/storyline:{VERSION}"), image
    dockerfile = (REPO / "Dockerfile").read_text()
    assert f"storyline:{VERSION}" in dockerfile, "the Dockerfile says the tag to build"
    assert re.search(r"^FROM nvidia/cuda:\S+", dockerfile, re.M), "a CUDA base"
    users = re.findall(r"^USER (\S+)", dockerfile, re.M)
    assert users and users[-1] not in ("root", "0"), "runs as a non-root user"
    assert "pip install /tmp/storyline" in dockerfile, "storyline and pyproject's pins"
    pyproject = tomllib.loads((REPO / "pyproject.toml").read_text())
    for folder in set(pyproject["tool"]["setuptools"]["package-dir"].values()):
        assert f"COPY {folder} /tmp/storyline/{folder}" in dockerfile, f"{folder}/ not copied"
