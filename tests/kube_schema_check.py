#!/usr/bin/python3
"""Checks Kubernetes manifests against the API's own types, as the Kubernetes Python client
(Debian's python3-kubernetes) generates them from the API's OpenAPI schema: every field is one
the object's type has, every value has the field's type (a string where a string is due: YAML
reads a bare 8080 or true as a number or a boolean), and every required field is there. KEDA's
ScaledObject (keda.sh/v1alpha1), a custom resource the client does not know, is checked against
the fields of KEDA's CRD (KEDA_TYPES below), its HorizontalPodAutoscaler behavior against the
client's own type.

Usage: kube_schema_check.py MANIFESTS.yaml
Exit: 0 valid; 1 invalid, each problem on its own line as `document N (Kind name): path: what`;
77 when the kubernetes module is missing (the caller skips).
"""
import re
import sys

import yaml

try:
    import kubernetes.client as k8s
    from kubernetes.client import ApiClient
except ImportError:
    print("the Python module kubernetes is missing (Debian: python3-kubernetes)")
    sys.exit(77)

KINDS = {
    ("v1", "ConfigMap"): "V1ConfigMap",
    ("v1", "Service"): "V1Service",
    ("apps/v1", "Deployment"): "V1Deployment",
    ("policy/v1", "PodDisruptionBudget"): "V1PodDisruptionBudget",
    ("v1", "ServiceAccount"): "V1ServiceAccount",
    ("rbac.authorization.k8s.io/v1", "Role"): "V1Role",
    ("rbac.authorization.k8s.io/v1", "RoleBinding"): "V1RoleBinding",
}

PRIMITIVES = {"str": str, "int": int, "bool": bool, "float": (int, float)}


# The HorizontalPodAutoscaler's behavior: autoscaling/v2's in newer clients, v2beta2's before.
HPA_BEHAVIOR = next(name for name in ("V2HorizontalPodAutoscalerBehavior",
                                      "V2beta2HorizontalPodAutoscalerBehavior")
                    if hasattr(k8s, name))


class Schema:
    """A type of a custom resource's schema, as the client's generated models describe theirs."""

    def __init__(self, fields, required=()):
        self.openapi_types = fields  # field -> type name
        self.attribute_map = {name: name for name in fields}
        self.required = required


# KEDA's ScaledObject, as its CRD (config/crd/bases/keda.sh_scaledobjects.yaml) has it.
KEDA_TYPES = {
    "KedaScaledObject": Schema(
        {"apiVersion": "str", "kind": "str", "metadata": "V1ObjectMeta",
         "spec": "KedaScaledObjectSpec"}, ["spec"]),
    "KedaScaledObjectSpec": Schema(
        {"scaleTargetRef": "KedaScaleTarget", "pollingInterval": "int", "cooldownPeriod": "int",
         "idleReplicaCount": "int", "minReplicaCount": "int", "maxReplicaCount": "int",
         "advanced": "KedaAdvanced", "fallback": "KedaFallback", "triggers": "list[KedaTrigger]"},
        ["scaleTargetRef", "triggers"]),
    "KedaScaleTarget": Schema(
        {"name": "str", "apiVersion": "str", "kind": "str", "envSourceContainerName": "str"},
        ["name"]),
    "KedaAdvanced": Schema(
        {"horizontalPodAutoscalerConfig": "KedaHpaConfig", "restoreToOriginalReplicaCount": "bool"}),
    "KedaHpaConfig": Schema(
        {"name": "str", "behavior": HPA_BEHAVIOR}),
    "KedaFallback": Schema({"failureThreshold": "int", "replicas": "int"},
                           ["failureThreshold", "replicas"]),
    "KedaTrigger": Schema(
        {"type": "str", "name": "str", "metadata": "dict(str, str)", "useCachedMetrics": "bool",
         "metricType": "str", "authenticationRef": "KedaAuthenticationRef"},
        ["type", "metadata"]),
    "KedaAuthenticationRef": Schema({"name": "str", "kind": "str"}, ["name"]),
}
KINDS[("keda.sh/v1alpha1", "ScaledObject")] = "KedaScaledObject"

# The Prometheus Operator's PodMonitor, as its CRD
# (example/prometheus-operator-crd/monitoring.coreos.com_podmonitors.yaml) has it: the fields
# Prescale writes and their neighbours.
KEDA_TYPES.update({
    "PodMonitor": Schema(
        {"apiVersion": "str", "kind": "str", "metadata": "V1ObjectMeta",
         "spec": "PodMonitorSpec"}, ["spec"]),
    "PodMonitorSpec": Schema(
        {"selector": "V1LabelSelector", "podMetricsEndpoints": "list[PodMetricsEndpoint]",
         "podTargetLabels": "list[str]", "jobLabel": "str",
         "namespaceSelector": "PodMonitorNamespaceSelector", "sampleLimit": "int",
         "targetLimit": "int", "labelLimit": "int"},
        ["selector"]),
    "PodMetricsEndpoint": Schema(
        {"port": "str", "portNumber": "int", "path": "str", "scheme": "str", "interval": "str",
         "scrapeTimeout": "str", "honorLabels": "bool", "honorTimestamps": "bool",
         "params": "dict(str, list[str])"}),
    "PodMonitorNamespaceSelector": Schema({"any": "bool", "matchNames": "list[str]"}),
})
KINDS[("monitoring.coreos.com/v1", "PodMonitor")] = "PodMonitor"

# Its PrometheusRule (monitoring.coreos.com_prometheusrules.yaml): rule groups of alerts and records.
KEDA_TYPES.update({
    "PrometheusRule": Schema(
        {"apiVersion": "str", "kind": "str", "metadata": "V1ObjectMeta",
         "spec": "PrometheusRuleSpec"}, ["spec"]),
    "PrometheusRuleSpec": Schema({"groups": "list[RuleGroup]"}),
    "RuleGroup": Schema(
        {"name": "str", "interval": "str", "limit": "int", "partial_response_strategy": "str",
         "query_offset": "str", "labels": "dict(str, str)", "rules": "list[Rule]"},
        ["name"]),
    "Rule": Schema(
        {"alert": "str", "record": "str", "expr": "object", "for": "str", "keep_firing_for": "str",
         "labels": "dict(str, str)", "annotations": "dict(str, str)"},
        ["expr"]),
})
KINDS[("monitoring.coreos.com/v1", "PrometheusRule")] = "PrometheusRule"


def check(value, type_name, path, problems):
    if type_name == "object":  # IntOrString and the like
        if not isinstance(value, (str, int)) or isinstance(value, bool):
            problems.append(f"{path}: expected an integer or a string, got {value!r}")
        return
    if type_name in PRIMITIVES:
        ok = isinstance(value, PRIMITIVES[type_name])
        if type_name != "bool" and isinstance(value, bool):
            ok = False
        if not ok:
            problems.append(f"{path}: expected {type_name}, got {value!r}")
        return
    m = re.fullmatch(r"list\[(.+)\]", type_name)
    if m:
        if not isinstance(value, list):
            problems.append(f"{path}: expected a list, got {value!r}")
            return
        for i, item in enumerate(value):
            check(item, m.group(1), f"{path}[{i}]", problems)
        return
    m = re.fullmatch(r"dict\(str, (.+)\)", type_name)
    if m:
        if not isinstance(value, dict):
            problems.append(f"{path}: expected a mapping, got {value!r}")
            return
        for key, item in value.items():
            if not isinstance(key, str):
                problems.append(f"{path}: key {key!r} is not a string")
            check(item, m.group(1), f"{path}.{key}", problems)
        return
    model = KEDA_TYPES.get(type_name) or getattr(k8s, type_name)
    if not isinstance(value, dict):
        problems.append(f"{path}: expected a {type_name} mapping, got {value!r}")
        return
    for name in model.required if isinstance(model, Schema) else ():
        if name not in value:
            problems.append(f"{path}: {type_name} needs the field {name!r}")
    by_json_name = {json: attr for attr, json in model.attribute_map.items()}
    for key, item in value.items():
        if key not in by_json_name:
            problems.append(f"{path}: {type_name} has no field {key!r}")
            continue
        check(item, model.openapi_types[by_json_name[key]], f"{path}.{key}", problems)


def main():
    with open(sys.argv[1], encoding="utf-8") as f:
        documents = [d for d in yaml.safe_load_all(f) if d is not None]
    problems = []
    client = ApiClient()
    for n, doc in enumerate(documents, 1):
        where = f"document {n} ({doc.get('kind')} {doc.get('metadata', {}).get('name')})"
        type_name = KINDS.get((doc.get("apiVersion"), doc.get("kind")))
        if type_name is None:
            problems.append(f"{where}: unexpected apiVersion/kind")
            continue
        found = []
        check(doc, type_name, "", found)
        problems += [f"{where}: {p}" for p in found]
        # The client's own checks: required fields, allowed values; of a ScaledObject, those of
        # its HorizontalPodAutoscaler behavior.
        checked, as_type = doc, type_name
        if type_name == "PodMonitor":
            checked = (doc.get("spec") or {}).get("selector")
            as_type = "V1LabelSelector"
        elif type_name == "PrometheusRule":
            checked = None  # no client type of its own: the fields above are all
        elif type_name in KEDA_TYPES:
            hpa = doc
            for key in ("spec", "advanced", "horizontalPodAutoscalerConfig"):
                hpa = hpa.get(key) if isinstance(hpa, dict) else None
            checked = hpa.get("behavior") if isinstance(hpa, dict) else None
            as_type = HPA_BEHAVIOR
        try:
            if checked is not None:
                client._ApiClient__deserialize(checked, as_type)
        except (ValueError, TypeError) as e:
            problems.append(f"{where}: {e}")
    for p in problems:
        print(p)
    print(f"{len(documents)} objects, {len(problems)} problems")
    return 1 if problems else 0


if __name__ == "__main__":
    sys.exit(main())
