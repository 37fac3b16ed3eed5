"""``--preset``: named options that fill in what the user left out, and never more."""

import pytest
from typer.testing import CliRunner

from xai_fer.cli import app
from xai_fer.errors import UserError
from xai_fer.explain.attribution import Attribution
from xai_fer.explain.plan import plan_explainers
from xai_fer.explain.presets import PRESETS


def _options(planned):
    return {item.name: item.options for item in planned}


def test_quick_fills_every_attribution_method_and_the_named_explainers():
    planned = plan_explainers(None, None, "quick")
    options = _options(planned)
    attributions = [item.name for item in planned if isinstance(item.explainer, Attribution)]
    assert len(attributions) >= 8
    for name in attributions:
        assert options[name].per_class == 1 and options[name].image_figures is False, name
    assert options["faithfulness"].randomization_images == 2 and options["activation-max"].first == 8
    assert options["rise"].masks == 200 and options["faithfulness"].steps == 16
    plain = _options(plan_explainers(None, None))
    assert plain["saliency"].per_class == 2 and plain["saliency"].image_figures is True
    assert plain["activation-max"].first is None


def test_given_options_win_over_the_preset_and_only_chosen_explainers_get_it():
    planned = plan_explainers(["saliency", "confusion"], {"saliency": {"per_class": "3"}}, "quick")
    options = _options(planned)
    assert set(options) == {"saliency", "confusion"}
    assert options["saliency"].per_class == 3 and options["saliency"].image_figures is False


def test_an_unknown_preset_is_one_line_with_the_choices(tmp_path):
    with pytest.raises(UserError, match="there is no preset 'quik'") as caught:
        plan_explainers(None, None, "quik")
    assert all(name in caught.value.hint for name in PRESETS)
    result = CliRunner().invoke(app, ["explain", "--preset", "quik", "--out", str(tmp_path / "out")])
    assert result.exit_code == 2 and "there is no preset 'quik'" in result.output
    assert not (tmp_path / "out").exists()
