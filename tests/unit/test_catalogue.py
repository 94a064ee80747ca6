"""The catalogue: loading, seed 000's percentage arithmetic, and validation errors."""

import copy
from pathlib import Path

import pytest
import yaml

from ingestload.errors import CatalogueError
from ingestload.messages.catalogue import Catalogue, default_catalogue_path

BUILT_IN = yaml.safe_load(default_catalogue_path().read_text())


def variant(**changes: object) -> dict:
    data = copy.deepcopy(BUILT_IN)
    data.update(changes)
    return data


def error_of(data: object) -> str:
    with pytest.raises(CatalogueError) as info:
        Catalogue.from_mapping(data, source="my.yaml")
    return str(info.value)


def test_built_in_catalogue_has_every_controller_and_message_type():
    """The built-in catalogue covers the eight controller types and four message types of seed 000."""
    catalogue = Catalogue.load()
    assert set(catalogue.controllers) == {"LCE", "GCE", "STEP", "ESC", "KSE", "DTU", "KCE", "KCECPUC"}
    assert catalogue.message_types == ("alarm", "fault", "serviceModeChange", "movementData")
    assert catalogue.topics() == ["gov-alarm", "gov-fault", "gov-movementData", "gov-serviceModeChange"]


def test_calculate_matches_the_percentage_table():
    """calculate(controller, msgType, total) gives the table's share, like seed 000's Percentage."""
    catalogue = Catalogue.load()
    assert catalogue.calculate("LCE", "movementData", 10_000) == 2_300
    assert catalogue.calculate("DTU", "alarm", 10_000) == 50
    assert catalogue.calculate("DTU", "movementData", 10_000) == 0


@pytest.mark.parametrize("total", [0, 1, 7, 999, 10_000, 123_457])
def test_counts_always_sum_to_the_total(total):
    """Largest-remainder rounding hands out exactly the total, whatever it is."""
    counts = Catalogue.load().counts(total)
    assert sum(counts.values()) == total
    for cell in Catalogue.load().cells:
        exact = cell.percent * total / 100
        assert abs(counts[(cell.controller.name, cell.msg_type)] - exact) < 1


def test_unknown_controller_in_mix_names_the_file_the_entry_and_a_fix():
    """A typo in a controller name is reported with the file, the entry and a suggestion."""
    data = variant()
    data["mix"]["LCEE"] = data["mix"].pop("LCE")
    message = error_of(data)
    assert message.startswith("my.yaml: mix.LCEE: unknown controller 'LCEE'")
    assert "did you mean 'LCE'" in message


def test_negative_weight_is_rejected():
    """A negative share is an error that names the cell."""
    data = variant()
    data["mix"]["GCE"]["alarm"] = -1.5
    assert error_of(data) == "my.yaml: mix.GCE.alarm: -1.5 is negative; a share must be ≥ 0"


def test_weights_that_do_not_sum_to_100_are_rejected():
    """The mix must add up to 100 percent; the error says the actual sum."""
    data = variant()
    data["mix"]["LCE"]["alarm"] = 3.5
    message = error_of(data)
    assert "mix: percentages add up to 100.5, not 100" in message


def test_non_numeric_weight_is_rejected():
    """A share that is not a number is reported as such."""
    data = variant()
    data["mix"]["LCE"]["alarm"] = "three"
    assert "mix.LCE.alarm: 'three' is not a number" in error_of(data)


def test_template_with_unknown_generator_names_the_field_and_the_known_generators():
    """A template that refers to a generator we do not have is rejected with the field path and a hint."""
    data = variant()
    data["templates"]["fault"]["Param"]["FaultCode"] = "$integer(1, 5)"
    message = error_of(data)
    assert message.startswith("my.yaml: templates.fault.Param.FaultCode: unknown generator '$integer(1, 5)'")
    assert "$int(LOW, HIGH)" in message


def test_generator_with_bad_arguments_is_rejected():
    """Generator arguments are checked when the catalogue loads, not when a message is sent."""
    data = variant()
    data["templates"]["fault"]["Param"]["FaultCode"] = "$int(9, 1)"
    assert "templates.fault.Param.FaultCode: $int(9, 1): LOW must not exceed HIGH" in error_of(data)
    data["templates"]["fault"]["Param"]["FaultCode"] = "$int(x, 1)"
    assert "templates.fault.Param.FaultCode" in error_of(data)


def test_message_type_in_mix_without_template_is_rejected():
    """Every message type with a non-zero share needs a template."""
    data = variant()
    del data["templates"]["fault"]
    assert "mix.LCE.fault: no template for 'fault'; add templates.fault" in error_of(data)


def test_template_for_unknown_message_type_is_rejected():
    """A template key must name a known message type (optionally prefixed by a controller)."""
    data = variant()
    data["templates"]["KCE/movement"] = {"a": 1}
    assert "templates.KCE/movement: unknown message type 'movement'" in error_of(data)


def test_unknown_top_level_key_is_rejected():
    """Misspelled top-level keys are not silently ignored."""
    data = variant(templtes={})
    assert "top level: unknown key 'templtes'" in error_of(data)


def test_dollar_dollar_is_a_literal_dollar():
    """$$ escapes a literal dollar sign in a template value."""
    data = variant()
    data["templates"]["alarm"]["Param"]["Price"] = "$$5"
    catalogue = Catalogue.from_mapping(data)
    assert catalogue.cells  # loads without complaining about a generator named "$5"


def test_yaml_syntax_error_names_the_file_and_line(tmp_path: Path):
    """A YAML syntax error is reported with the file and line, on one line."""
    path = tmp_path / "broken.yaml"
    path.write_text("version: 1\nmix: {LCE: [\n")
    with pytest.raises(CatalogueError) as info:
        Catalogue.load(path)
    assert str(info.value).startswith(f"{path}:")
    assert "\n" not in str(info.value)


def test_missing_file_is_a_clear_error(tmp_path: Path):
    """A catalogue path that does not exist is reported, not a traceback."""
    with pytest.raises(CatalogueError, match="cannot read catalogue"):
        Catalogue.load(tmp_path / "nope.yaml")
