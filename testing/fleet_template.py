"""Reading aws/fleet.yml: CloudFormation's short tags, its resources, and the
launch template's user-data with values put in for its parameters. Shared by
the template's static checks (testing/test_fleet_template.py) and the local
fleet (testing/fleet), whose instances boot with the very user-data the
template gives the fleet's instances, so the two cannot drift apart."""

import os
import re

import yaml

ROOT = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))
TEMPLATE = os.path.join(ROOT, "aws", "fleet.yml")


class CfnLoader(yaml.SafeLoader):
    """YAML with CloudFormation's short tags (!Ref x -> {"Ref": x})."""


def _tag(loader, suffix, node):
    name = "Ref" if suffix == "Ref" else f"Fn::{suffix}"
    if isinstance(node, yaml.ScalarNode):
        value = loader.construct_scalar(node)
    elif isinstance(node, yaml.SequenceNode):
        value = loader.construct_sequence(node, deep=True)
    else:
        value = loader.construct_mapping(node, deep=True)
    if name == "Fn::GetAtt" and isinstance(value, str):
        value = value.split(".", 1)
    return {name: value}


CfnLoader.add_multi_constructor("!", _tag)


def load(path=TEMPLATE):
    with open(path) as f:
        return yaml.load(f, Loader=CfnLoader)  # noqa: S506 (SafeLoader subclass)


def resource(template, name):
    return template["Resources"][name]["Properties"]


def user_data_text(template, values):
    """The launch template's cloud-config as an instance receives it, with
    `values` for the parameters it names (every one must be given)."""
    sub = resource(template, "LaunchTemplate")["LaunchTemplateData"]["UserData"]["Fn::Base64"]
    text = sub["Fn::Sub"][0]
    for name in re.findall(r"\$\{(\w+)\}", text):
        assert name in template["Parameters"], f"user-data names ${{{name}}}, not a parameter"
        assert name in values, f"no value given for the user-data's ${{{name}}}"
    text = re.sub(r"\$\{(\w+)\}", lambda m: values[m.group(1)], text)
    assert text.startswith("#cloud-config\n"), text[:40]
    return text


def user_data(template, values):
    return yaml.safe_load(user_data_text(template, values))
