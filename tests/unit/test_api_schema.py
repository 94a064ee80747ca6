"""Message schemas of the ingest API, derived from the catalogue's templates."""

import time

import orjson
import pytest

from ingestload.api.schema import Schemas
from ingestload.messages.catalogue import Catalogue
from ingestload.messages.factory import MessageFactory


@pytest.fixture(scope="module")
def schemas() -> Schemas:
    return Schemas.from_catalogue(Catalogue.load())


@pytest.fixture(scope="module")
def messages() -> list[tuple[str, dict]]:
    factory = MessageFactory(Catalogue.load())
    return [
        (topic.removeprefix("gov-"), orjson.loads(value))
        for topic, value in (factory.next(time.time_ns()) for _ in range(2000))
    ]


def test_every_generated_message_is_valid(schemas, messages):
    """Every message the factory makes, of every type and controller, passes its type's schema."""
    assert {t for t, _ in messages} == set(schemas.message_types)
    assert [m for t, m in messages if schemas.check(t, m) is not None] == []


def test_override_template_is_a_second_shape(schemas):
    """A controller override (KCECPUC/movementData) is accepted next to the generic template."""
    assert [s.source for s in schemas.shapes["movementData"]] == ["movementData", "KCECPUC/movementData"]
    assert [s.field_count() for s in schemas.shapes["movementData"]] == [12, 13]


def test_envelope_member_is_allowed_once_at_the_top(schemas, messages):
    """The envelope member may be added at the top level, but not inside nested objects."""
    msg_type, message = messages[0]
    assert schemas.check(msg_type, {**message, "_ingestload": {"seq": 1}}) is None
    nested = {**message, "Param": {**message["Param"], "_ingestload": 1}}
    assert "unexpected field Param._ingestload" in schemas.check(msg_type, nested)


def test_envelope_member_name_is_configurable(messages):
    """With another envelope name the default one counts as an unexpected field."""
    schemas = Schemas.from_catalogue(Catalogue.load(), envelope_field="env")
    msg_type, message = messages[0]
    assert schemas.check(msg_type, {**message, "env": 1}) is None
    assert "unexpected field _ingestload" in schemas.check(msg_type, {**message, "_ingestload": 1})


def test_missing_and_extra_fields_are_named(schemas, messages):
    """A violation names each missing and unexpected field by its path and the expected count."""
    message = next(m for t, m in messages if t == "alarm")
    broken = {**message, "Extra": 1, "Param": {k: v for k, v in message["Param"].items() if k != "Severity"}}
    problem = schemas.check("alarm", broken)
    assert problem == (
        "alarm: missing field Param.Severity; unexpected field Extra "
        "(expected the 11 fields of the alarm template plus an optional '_ingestload' member)"
    )


def test_wrong_kind_of_value(schemas, messages):
    """A nested object replaced by a scalar, or a message that is not an object, is a violation."""
    message = next(m for t, m in messages if t == "fault")
    assert "not an object: Header" in schemas.check("fault", {**message, "Header": "x"})
    assert schemas.check("fault", [message]) == "fault: a message must be a JSON object, got an array"
    assert schemas.check("fault", None) == "fault: a message must be a JSON object, got null"


def test_value_types_are_not_checked(schemas, messages):
    """Only the structure counts: a number sent as text is accepted."""
    message = next(m for t, m in messages if t == "alarm")
    assert schemas.check("alarm", {**message, "Param": {**message["Param"], "Floor": "12"}}) is None
