"""Reading aws/fleet.yml: CloudFormation's short tags, its resources, and the
launch template's user-data with values put in for its parameters. Shared by
the template's static checks (testing/static/test_fleet_template.py) and the local
fleet (testing/fleet), whose instances boot with the very user-data the
template gives the fleet's instances, so the two cannot drift apart."""

import os
import re

import yaml

from harness import ROOT

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


def substitute(template, text, values):
    """Fn::Sub's ${Name} for the parameters TEXT names (every one must be given)."""
    for name in re.findall(r"\$\{(\w+)\}", text):
        assert name in template["Parameters"], f"user-data names ${{{name}}}, not a parameter"
        assert name in values, f"no value given for the user-data's ${{{name}}}"
    return re.sub(r"\$\{(\w+)\}", lambda m: values[m.group(1)], text)


def evaluate(template, node, values):
    """The few intrinsic functions the template's user-data and conditions
    use: a string, Ref, Fn::Sub of parameters, Fn::Join, Fn::Split,
    Fn::Select, and Fn::If on a condition made of Fn::Not, Fn::Equals,
    Fn::And and Condition (anything else is refused, so nothing is guessed)."""
    if isinstance(node, (str, int)):
        return node
    if isinstance(node, list):
        return [evaluate(template, item, values) for item in node]
    (name, arg), = node.items()
    if name == "Fn::Join":
        return arg[0].join(evaluate(template, arg[1], values))
    if name == "Fn::Split":
        return evaluate(template, arg[1], values).split(arg[0])
    if name == "Fn::Select":
        return evaluate(template, arg[1], values)[int(evaluate(template, arg[0], values))]
    if name == "Fn::And":
        return all(evaluate(template, item, values) for item in arg)
    if name == "Condition":
        return evaluate(template, template["Conditions"][arg], values)
    if name == "Ref":
        assert arg in values, f"no value given for the user-data's Ref {arg}"
        return values[arg]
    if name == "Fn::Sub":
        return substitute(template, arg, values)
    if name == "Fn::If":
        condition, then, otherwise = arg
        held = evaluate(template, template["Conditions"][condition], values)
        return evaluate(template, then if held else otherwise, values)
    if name == "Fn::Not":
        return not evaluate(template, arg[0], values)
    if name == "Fn::Equals":
        return evaluate(template, arg[0], values) == evaluate(template, arg[1], values)
    raise AssertionError(f"the user-data uses {name}, which this reader does not evaluate")


def user_data_text(template, values):
    """The launch template's cloud-config as an instance receives it, with
    `values` for the parameters it names (every one must be given)."""
    sub = resource(template, "LaunchTemplate")["LaunchTemplateData"]["UserData"]["Fn::Base64"]
    text, variables = sub["Fn::Sub"]
    local = {name: evaluate(template, node, values) for name, node in variables.items()}
    text = substitute({"Parameters": {**template["Parameters"], **local}}, text,
                      {**values, **local})
    assert text.startswith("#cloud-config\n"), text[:40]
    return text


def user_data(template, values):
    return yaml.safe_load(user_data_text(template, values))
