import pytest

from mamllib.config import Config, from_dict, profile
from mamllib.errors import ConfigError


def test_profiles():
    assert profile("quick") == Config()
    paper = profile("paper")
    assert (paper.dataset, paper.width, paper.inner_steps, paper.test_inner_steps, paper.inner_lr,
            paper.meta_batch, paper.n_query, paper.iterations) == ("miniimagenet", 32, 5, 10, 0.01,
                                                                   4, 15, 60000)
    assert profile("smoke", inner_lr=-0.4).inner_lr == -0.4


def test_hash_is_stable_and_ignores_evaluation_only_fields():
    base = Config()
    assert base.training_hash() == Config().training_hash()
    assert base.training_hash() == base.replace(test_inner_lr=0.3, test_tasks=10,
                                                device="cpu").training_hash()
    assert base.training_hash() != base.replace(inner_lr=-0.4).training_hash()
    assert base.training_hash() != base.replace(seed=1).training_hash()


def test_fields_added_later_keep_the_hash_of_earlier_runs_at_their_defaults():
    # The hashes every run trained before train_tasks, label_noise and patience existed carries
    # (computed at commit 8e86d1b): their folders and checkpoints stay valid.
    assert profile("quick").training_hash() == "a2ac685ad3ac"
    assert profile("smoke").training_hash() == "fe52ebc74e4f"
    base = profile("quick")
    hashes = {base.replace(**change).training_hash() for change in
              ({}, {"train_tasks": 10}, {"label_noise": 0.2}, {"patience": 3})}
    assert len(hashes) == 4


def test_with_early_stopping_the_validation_settings_shape_training():
    base = profile("quick")
    assert base.replace(val_every=50).training_hash() == base.training_hash()  # no stopping: evaluation only
    stopping = base.replace(patience=3)
    changed = [stopping.replace(**change).training_hash() for change in
               ({"val_every": 50}, {"val_tasks": 20}, {"test_inner_lr": -0.4}, {"test_inner_steps": 2},
                {"stop_on": "best_rate"})]
    assert len({stopping.training_hash(), *changed}) == 6
    assert base.replace(stop_on="best_rate").training_hash() == base.training_hash()
    assert stopping.replace(device="cpu", test_tasks=10).training_hash() == stopping.training_hash()


@pytest.mark.parametrize("field, value, message", [
    ("train_tasks", -1, "fresh task"), ("label_noise", 1.0, "up to 1"), ("label_noise", -0.1, "from 0"),
    ("patience", -1, "no early stopping"), ("stop_on", "loss", "rate, best_rate"),
    ("n_way", 1, "n_way=1"), ("k_shot", 0, "k_shot=0"), ("inner_lr", float("nan"), "finite"),
    ("dataset", "mnist", "glyphs, omniglot, miniimagenet"), ("iterations", 0, "positive"),
    ("inner_lr", "0.4", "wrong type"), ("first_order", 1, "wrong type"), ("device", "tpu", "auto, cpu, cuda"),
])
def test_validation_names_field_and_allowed_values(field, value, message):
    with pytest.raises(ConfigError, match=message) as info:
        Config(**{field: value})
    assert field in str(info.value)


def test_unknown_fields_and_profiles_are_refused():
    with pytest.raises(ConfigError, match="unknown field 'inner_rate'"):
        from_dict({"inner_rate": 0.1})
    with pytest.raises(ConfigError, match="smoke, quick, paper"):
        profile("fast")


def test_integer_rates_are_accepted_as_floats():
    assert Config(inner_lr=0).inner_lr == 0


@pytest.mark.parametrize("value, message", [
    ("0.1,abc", "finite numbers separated by commas"), ("0.1,,0.2", "finite numbers"),
    ("0.1,inf", "finite numbers")])
def test_per_tensor_rates_must_be_numbers(value, message):
    with pytest.raises(ConfigError, match=message) as info:
        profile("smoke", tensor_inner_lrs=value)
    assert "tensor_inner_lrs" in str(info.value)


def test_per_tensor_rates_are_fixed_not_learned_and_keep_other_runs_hashes():
    with pytest.raises(ConfigError, match="cannot be learned"):
        profile("smoke", tensor_inner_lrs="0.1", learn_inner_lr=True)
    base = profile("smoke")
    assert base.replace(tensor_inner_lrs="").training_hash() == base.training_hash()
    assert base.replace(tensor_inner_lrs="0.1,0.2").training_hash() != base.training_hash()
