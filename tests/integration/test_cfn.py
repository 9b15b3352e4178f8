# SPDX-License-Identifier: MIT
"""aws/template.yaml against the CloudFormation resource specification.

The specification is the one @aws-cdk/cfnspec ships (npm registry,
installed by scripts/deps under tests/cfnspec/).  Every resource type,
property, nested property type and GetAtt attribute must be in it, every
required property set and every Ref and Sub name defined; the host policy
must allow sending to the one stream and nothing else, the auditor role
must not be able to change the events, and the Glue table and the named
queries must be those of docs/athena.md.
"""

import json
import re

import pytest
import yaml

from conftest import REPO_ROOT

TEMPLATE = REPO_ROOT / "aws" / "template.yaml"
SPEC = (REPO_ROOT / "tests" / "cfnspec" / "node_modules" / "@aws-cdk" /
        "cfnspec" / "spec" / "specification.json")
DOC = REPO_ROOT / "docs" / "athena.md"

PSEUDO = {"AWS::AccountId", "AWS::NotificationARNs", "AWS::NoValue",
          "AWS::Partition", "AWS::Region", "AWS::StackId", "AWS::StackName",
          "AWS::URLSuffix"}


# -- loading -----------------------------------------------------------------

class CfnLoader(yaml.SafeLoader):
    """SafeLoader that turns the short intrinsic tags into their long form."""


def _intrinsic(loader, suffix, node):
    name = "Ref" if suffix == "Ref" else (
        "Condition" if suffix == "Condition" else "Fn::" + suffix)
    if isinstance(node, yaml.ScalarNode):
        value = loader.construct_scalar(node)
        if suffix == "GetAtt":
            value = value.split(".", 1)
    elif isinstance(node, yaml.SequenceNode):
        value = loader.construct_sequence(node, deep=True)
    else:
        value = loader.construct_mapping(node, deep=True)
    return {name: value}


CfnLoader.add_multi_constructor("!", _intrinsic)


def load_template():
    with open(TEMPLATE) as f:
        return yaml.load(f, CfnLoader)


@pytest.fixture(scope="module")
def spec():
    if not SPEC.is_file():
        pytest.fail("the CloudFormation specification is not installed: "
                    "run scripts/deps")
    with open(SPEC) as f:
        return json.load(f)


@pytest.fixture(scope="module")
def template():
    return load_template()


# -- checking against the specification --------------------------------------

def is_intrinsic(v):
    return isinstance(v, dict) and len(v) == 1 and (
        next(iter(v)) in ("Ref", "Condition")
        or next(iter(v)).startswith("Fn::"))


PRIMITIVES = {
    "String": (str,),
    "Integer": (int,),
    "Long": (int,),
    "Double": (int, float),
    "Boolean": (bool,),
    "Timestamp": (str,),
}


def check_primitive(kind, value, where, problems):
    if is_intrinsic(value) or kind == "Json":
        return
    ok = PRIMITIVES[kind]
    # CloudFormation takes "true" and numbers as strings alike; YAML typing
    # decides which one a template holds, so both are fine.
    if kind in ("Integer", "Long", "Double") and isinstance(value, str):
        try:
            float(value)
            return
        except ValueError:
            pass
    if kind == "Boolean" and value in ("true", "false"):
        return
    if kind == "String" and isinstance(value, (int, float, bool)):
        return
    if isinstance(value, bool) and bool not in ok:
        problems.append("%s: %r is not a %s" % (where, value, kind))
    elif not isinstance(value, ok):
        problems.append("%s: %r is not a %s" % (where, value, kind))


def check_properties(spec, owner, props_spec, props, where, problems):
    if is_intrinsic(props):
        return
    if not isinstance(props, dict):
        problems.append("%s: expected an object, got %r" % (where, props))
        return
    for name, p in props_spec.items():
        if p.get("Required") and name not in props:
            problems.append("%s: required property %s is missing"
                            % (where, name))
    for name, value in props.items():
        if name not in props_spec:
            problems.append("%s: %s is not a property of %s"
                            % (where, name, owner))
            continue
        check_value(spec, owner, props_spec[name], value,
                    "%s.%s" % (where, name), problems)


def property_type(spec, owner, name):
    base = owner.split(".")[0]
    key = name if name == "Tag" else "%s.%s" % (base, name)
    return spec["PropertyTypes"].get(key) or spec["PropertyTypes"].get(name)


def check_item(spec, owner, p, value, where, problems):
    if "PrimitiveItemType" in p:
        check_primitive(p["PrimitiveItemType"], value, where, problems)
        return
    t = property_type(spec, owner, p["ItemType"])
    assert t is not None, "spec has no type %s for %s" % (p["ItemType"], where)
    owner_t = "%s.%s" % (owner.split(".")[0], p["ItemType"])
    check_properties(spec, owner_t, t.get("Properties", {}), value, where,
                     problems)


def check_value(spec, owner, p, value, where, problems):
    if is_intrinsic(value):
        return
    if "PrimitiveType" in p:
        check_primitive(p["PrimitiveType"], value, where, problems)
    elif p.get("Type") == "List":
        if not isinstance(value, list):
            problems.append("%s: expected a list" % where)
            return
        for i, v in enumerate(value):
            check_item(spec, owner, p, v, "%s[%d]" % (where, i), problems)
    elif p.get("Type") == "Map":
        if not isinstance(value, dict):
            problems.append("%s: expected a map" % where)
            return
        for k, v in value.items():
            check_item(spec, owner, p, v, "%s.%s" % (where, k), problems)
    else:
        t = property_type(spec, owner, p["Type"])
        assert t is not None, "spec has no type %s for %s" % (p["Type"],
                                                              where)
        if "PrimitiveType" in t:
            check_primitive(t["PrimitiveType"], value, where, problems)
            return
        owner_t = "%s.%s" % (owner.split(".")[0], p["Type"])
        check_properties(spec, owner_t, t.get("Properties", {}), value,
                         where, problems)


def walk(value):
    yield value
    if isinstance(value, dict):
        for v in value.values():
            yield from walk(v)
    elif isinstance(value, list):
        for v in value:
            yield from walk(v)


def test_every_resource_and_property_is_in_the_spec(spec, template):
    problems = []
    for name, res in template["Resources"].items():
        rtype = res.get("Type")
        rspec = spec["ResourceTypes"].get(rtype)
        if rspec is None:
            problems.append("%s: unknown resource type %s" % (name, rtype))
            continue
        check_properties(spec, rtype, rspec.get("Properties", {}),
                         res.get("Properties", {}), name, problems)
    assert not problems, "\n".join(problems)


def test_every_name_is_defined(spec, template):
    resources = template["Resources"]
    known = set(resources) | set(template.get("Parameters", {})) | PSEUDO
    problems = []
    for node in walk(template):
        if not isinstance(node, dict) or len(node) != 1:
            continue
        (k, v), = node.items()
        if k == "Ref" and v not in known:
            problems.append("Ref to undefined %s" % v)
        elif k == "Fn::GetAtt":
            res, attr = v
            rtype = resources.get(res, {}).get("Type")
            attrs = spec["ResourceTypes"].get(rtype, {}).get("Attributes",
                                                             {})
            if attr not in attrs:
                problems.append("GetAtt %s.%s: %s has no such attribute"
                                % (res, attr, rtype))
        elif k == "Fn::Sub":
            text = v if isinstance(v, str) else v[0]
            local = set(v[1]) if isinstance(v, list) else set()
            for ref in re.findall(r"\$\{([^!}][^}]*)\}", text):
                base = ref.split(".")[0]
                if ref not in known and ref not in local and \
                        base not in resources:
                    problems.append("Sub names undefined %s" % ref)
                if "." in ref and base in resources:
                    rtype = resources[base]["Type"]
                    attrs = spec["ResourceTypes"][rtype].get("Attributes",
                                                             {})
                    if ref.split(".", 1)[1] not in attrs:
                        problems.append("Sub %s: no such attribute" % ref)
        elif k == "Fn::If" and v[0] not in template.get("Conditions", {}):
            problems.append("If on undefined condition %s" % v[0])
    assert not problems, "\n".join(problems)


def test_checker_finds_mistakes(spec, template):
    """The checks above fail on a template with the usual slips."""
    bad = load_template()
    b = bad["Resources"]["EventBucket"]["Properties"]
    b["ObjectLockConfiguration"]["Rule"]["DefaultRetention"]["Mode"] = [
        "COMPLIANCE"]
    b["VersioningConfiguration"]["Stauts"] = "Enabled"
    del bad["Resources"]["DeliveryStream"]["Properties"][
        "ExtendedS3DestinationConfiguration"]["RoleARN"]
    bad["Resources"]["Extra"] = {"Type": "AWS::S3::Buckets"}
    problems = []
    for name, res in bad["Resources"].items():
        rspec = spec["ResourceTypes"].get(res["Type"])
        if rspec is None:
            problems.append("unknown type " + name)
            continue
        check_properties(spec, res["Type"], rspec["Properties"],
                         res.get("Properties", {}), name, problems)
    text = "\n".join(problems)
    assert "DefaultRetention.Mode: ['COMPLIANCE'] is not a String" in text
    assert "Stauts is not a property" in text
    assert "required property RoleARN is missing" in text
    assert "unknown type Extra" in text


# -- what the resources allow ------------------------------------------------

def statements(doc):
    s = doc["Statement"]
    return s if isinstance(s, list) else [s]


def as_list(v):
    return v if isinstance(v, list) else [v]


def test_host_policy_sends_to_the_one_stream_only(template):
    res = template["Resources"]
    policies = [n for n, r in res.items()
                if r["Type"] == "AWS::IAM::ManagedPolicy"]
    assert policies == ["HostPolicy"]
    stmts = statements(res["HostPolicy"]["Properties"]["PolicyDocument"])
    assert len(stmts) == 1
    (st,) = stmts
    assert st["Effect"] == "Allow"
    assert not {"NotAction", "NotResource", "Condition"} & set(st)
    actions = set(as_list(st["Action"]))
    assert "firehose:PutRecordBatch" in actions
    assert actions <= {"firehose:PutRecordBatch", "firehose:PutRecord"}
    assert as_list(st["Resource"]) == [{"Fn::GetAtt": ["DeliveryStream",
                                                       "Arn"]}]
    streams = [n for n, r in res.items()
               if r["Type"] == "AWS::KinesisFirehose::DeliveryStream"]
    assert streams == ["DeliveryStream"]


def test_auditor_role_only_reads_the_events(template):
    res = template["Resources"]
    role = res["AuditorRole"]["Properties"]
    assert "ManagedPolicyArns" not in role
    bucket_arns = ({"Fn::GetAtt": ["EventBucket", "Arn"]},
                   {"Fn::Sub": "${EventBucket.Arn}/*"})
    for pol in role["Policies"]:
        for st in statements(pol["PolicyDocument"]):
            assert st["Effect"] == "Allow"
            assert "NotAction" not in st and "NotResource" not in st
            actions = as_list(st["Action"])
            assert all("*" not in a for a in actions), actions
            on_events = any(r in bucket_arns for r in as_list(st["Resource"]))
            for a in actions:
                service, verb = a.split(":")
                if on_events or service in ("glue", "kms"):
                    assert verb.startswith(("Get", "List", "Decrypt",
                                            "GenerateDataKey")), a
                if service == "s3" and not verb.startswith(("Get", "List")):
                    assert not on_events, a
                    assert as_list(st["Resource"])[-1] == {
                        "Fn::Sub": "${ResultBucket.Arn}/results/*"}, a


def test_bucket_is_locked_encrypted_and_private(template):
    b = template["Resources"]["EventBucket"]["Properties"]
    assert b["ObjectLockEnabled"] is True
    lock = b["ObjectLockConfiguration"]
    assert lock["ObjectLockEnabled"] == "Enabled"
    assert lock["Rule"]["DefaultRetention"] == {
        "Mode": "COMPLIANCE", "Days": {"Ref": "RetentionDays"}}
    assert b["VersioningConfiguration"] == {"Status": "Enabled"}
    (sse,) = b["BucketEncryption"]["ServerSideEncryptionConfiguration"]
    assert sse["ServerSideEncryptionByDefault"]["SSEAlgorithm"] == "aws:kms"
    assert set(b["PublicAccessBlockConfiguration"].values()) == {True}
    assert len(b["PublicAccessBlockConfiguration"]) == 4
    (rule,) = b["LifecycleConfiguration"]["Rules"]
    assert "ExpirationInDays" not in rule
    assert rule["Transitions"][0]["StorageClass"] == "GLACIER_IR"


def test_stream_layout_matches_the_table(template):
    res = template["Resources"]
    s3 = res["DeliveryStream"]["Properties"][
        "ExtendedS3DestinationConfiguration"]
    assert res["DeliveryStream"]["Properties"]["DeliveryStreamType"] == \
        "DirectPut"
    assert s3["CompressionFormat"] == "GZIP"
    assert set(s3["BufferingHints"]) == {"IntervalInSeconds", "SizeInMBs"}
    layout = re.sub(r"!\{timestamp:(\w+)\}", r"\1", s3["Prefix"])
    assert layout == "events/yyyy/MM/dd/HH/"
    params = res["EventTable"]["Properties"]["TableInput"]["Parameters"]
    assert params["projection.dt.format"] == "yyyy/MM/dd/HH"
    assert params["storage.location.template"] == {
        "Fn::Sub": "s3://${EventBucket}/events/${!dt}/"}


# -- the same table and queries as the document ------------------------------

def doc_athena():
    return {n: s.strip() for e, n, s in re.findall(
        r"<!-- (athena|duckdb): ([a-z_]+) -->\s*```sql\n(.*?)```",
        DOC.read_text(), re.S) if e == "athena"}


def ddl_columns(ddl):
    """[(name, type without blanks)] of the CREATE TABLE column list."""
    body = ddl[ddl.index("(") + 1:ddl.index("\n)\nPARTITIONED BY")]
    cols, depth, cur = [], 0, ""
    for ch in body.replace("`", "") + ",":
        if ch == "," and depth == 0:
            name, rest = cur.split(None, 1)
            cols.append((name, re.sub(r"\s+", "", rest)))
            cur = ""
            continue
        depth += (ch == "<") - (ch == ">")
        cur += ch
    return cols


def test_glue_table_is_the_documented_one(template):
    ti = template["Resources"]["EventTable"]["Properties"]["TableInput"]
    cols = [(c["Name"], re.sub(r"\s+", "", c["Type"]))
            for c in ti["StorageDescriptor"]["Columns"]]
    ddl = doc_athena()["table"]
    assert cols == ddl_columns(ddl)
    serde = ti["StorageDescriptor"]["SerdeInfo"]
    assert serde["SerializationLibrary"] in ddl
    for k, v in serde["Parameters"].items():
        assert "'%s' = '%s'" % (k, v) in ddl, k
    for k, v in ti["Parameters"].items():
        if isinstance(v, str) and k.startswith("projection."):
            if k == "projection.dt.range":
                continue
            assert "'%s' = '%s'" % (k, v) in ddl, k


def test_named_queries_are_the_documented_ones(template):
    docs = doc_athena()
    queries = {r["Properties"]["QueryString"].strip()
               for r in template["Resources"].values()
               if r["Type"] == "AWS::Athena::NamedQuery"}
    want = {sql for name, sql in docs.items() if name != "table"}
    assert queries == want
    for r in template["Resources"].values():
        if r["Type"] == "AWS::Athena::NamedQuery":
            assert r["Properties"]["WorkGroup"] == {"Ref": "AuditWorkGroup"}
            assert r["Properties"]["Database"] == {"Ref": "GlueDatabase"}
    db = template["Resources"]["GlueDatabase"]["Properties"]
    assert all("aaas_audit.events" in q for q in queries)
    assert db["DatabaseInput"]["Name"] == "aaas_audit"


def test_no_lambda_and_alarms_watch_the_stream(template):
    res = template["Resources"]
    assert not [n for n, r in res.items() if "Lambda" in r["Type"]]
    assert "ProcessingConfiguration" not in res["DeliveryStream"][
        "Properties"]["ExtendedS3DestinationConfiguration"]
    metrics = {r["Properties"]["MetricName"] for r in res.values()
               if r["Type"] == "AWS::CloudWatch::Alarm"}
    assert {"DeliveryToS3.DataFreshness", "ThrottledRecords"} <= metrics
    for r in res.values():
        if r["Type"] == "AWS::CloudWatch::Alarm":
            assert r["Properties"]["Dimensions"] == [{
                "Name": "DeliveryStreamName",
                "Value": {"Ref": "DeliveryStream"}}]
