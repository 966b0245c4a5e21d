"""Output checks (metrics/collapse.py): loops on the model's own subword tokens, outputs cut off at the
generation limit, outputs in another language, and the collapsed / truncated flags.

Loops are checked on the ids the shipped stand-in's tokenizer gives, the tokenizer of the offline demo
whose glued repetitions (`def _get_token_token_token...`, `getgetget...`) a word-level check missed."""

from pathlib import Path

import pytest
import torch
from transformers import AutoTokenizer

from hybridcl.evaluate import generated_tokens, generations
from hybridcl.metrics import Generation, is_collapsed, is_truncated, score_predictions
from hybridcl.metrics.collapse import (
    LOOP_MAX_BLOCK,
    MAX_LOOPING_SHARE,
    MAX_TRUNCATED_SHARE,
    MIN_DISTINCT_SHARE,
    distinct_share,
    length_ratio,
    loops,
    output_checks,
)
from hybridcl.metrics.meteor import tokenize
from hybridcl.metrics.syntax import parse_flags, wrong_language_flags

STAND_IN = Path(__file__).resolve().parents[1] / "models" / "stand-in-base"
GLUED = [  # outputs of the offline demo's base and trained models
    "def _get_token_token_token_token_token_token_token_token(",
    "getgetgetgetgetgetgetgetgetgetget",
    "PDFField.prototype.setdefaultdefaultdefaultdefaultdefaultdefault",
    "def f(): return x\n" * 6,
]
HEALTHY = [
    "def __init__(self, x, y, z):\n    self.x = x\n    self.y = y\n    self.z = z\n",
    "def total(a):\n    return sum(map(int, filter(None, map(str.strip, a))))",
    "def pad(xs):\n    return [0, 0, 0] + xs",
    'def doc():\n    """Return the answer."""\n    return 42',
    "function add(a, b) {\n  const total = a + b;\n  return total;\n}",
    "async get(key) {\n  return (await this.store.get(key)) || null;\n}",
]


@pytest.fixture(scope="module")
def tokenizer():
    return AutoTokenizer.from_pretrained(STAND_IN)


def subwords(tokenizer, text: str) -> tuple[int, ...]:
    return tuple(tokenizer(text, add_special_tokens=False)["input_ids"])


def test_glued_repetitions_loop_on_subwords_though_each_is_one_word(tokenizer):
    for text in GLUED[:3]:
        assert len(set(tokenize(text))) <= 4, text  # a word-level check sees a handful of words, no repeat
        assert loops(subwords(tokenizer, text)), text
    assert loops(subwords(tokenizer, GLUED[3]))  # a 6-subword block, 6 times


def test_healthy_code_does_not_loop(tokenizer):
    for text in HEALTHY:
        assert not loops(subwords(tokenizer, text)), text
    assert not loops(subwords(tokenizer, "def _get_token_token_token("))  # three copies are not a loop


def test_loops_by_hand():
    assert loops("aaaa") and not loops("aaa")
    assert loops("xabababab") and not loops("xababab")
    block = list(range(LOOP_MAX_BLOCK))
    assert loops(block * 4) and not loops(block * 3)
    assert not loops(list(range(LOOP_MAX_BLOCK + 1)) * 4)  # a block longer than any checked
    assert not loops([])


def test_the_demos_outputs_are_flagged_collapsed_and_truncated(tokenizer):
    # 200 outputs like the demo's after stage 1: 92 loops cut off at the limit, 108 ordinary functions.
    # All differ, so distinct share alone (the old check) saw nothing.
    loops_ = [f"def _get_{i}" + "_token" * 60 for i in range(46)] + [f"x{i} = " + "get" * 80 for i in range(46)]
    healthy = [f"def f{i}(a):\n    return a + {i}" for i in range(108)]
    predictions = loops_ + healthy
    produced = [Generation(subwords(tokenizer, p)[:128], ended=False) for p in loops_]
    produced += [Generation(subwords(tokenizer, p), ended=True) for p in healthy]
    stats, flags = output_checks(predictions, predictions, produced)
    assert stats["distinct_share"] == 1.0
    assert stats["looping_share"] == stats["truncated_share"] == 92 / 200
    assert flags["loops"] == flags["truncated"] == [True] * 92 + [False] * 108
    assert is_collapsed(stats) and is_truncated(stats)
    healthy_stats, _ = output_checks(healthy, healthy, produced[92:])
    assert healthy_stats["looping_share"] == healthy_stats["truncated_share"] == 0.0
    assert not is_collapsed(healthy_stats) and not is_truncated(healthy_stats)


def test_flags_at_their_thresholds():
    assert is_collapsed({"distinct_share": MIN_DISTINCT_SHARE - 0.01})
    assert not is_collapsed({"distinct_share": MIN_DISTINCT_SHARE, "looping_share": MAX_LOOPING_SHARE})
    assert is_collapsed({"distinct_share": 1.0, "looping_share": MAX_LOOPING_SHARE + 0.01})
    assert not is_truncated({"truncated_share": MAX_TRUNCATED_SHARE})
    assert is_truncated({"truncated_share": MAX_TRUNCATED_SHARE + 0.01})
    # statistics not recorded (results from before them) or not defined raise no flag
    assert not is_collapsed({"distinct_share": None, "looping_share": None}) and not is_collapsed({})
    assert not is_truncated({"distinct_share": 0.1}) and not is_truncated({"truncated_share": None})


def test_word_level_statistics_by_hand():
    assert distinct_share(["f(x)", "f( x )", "g(x)", "h"]) == 0.75  # whitespace is formatting
    assert length_ratio(["a b", "c"], ["a b c d", "e f"]) == 0.5
    assert length_ratio(["a"], [""]) is None  # no reference tokens


def test_wrong_language_is_another_languages_code_and_not_ones_own():
    js_task = [
        "def add(a, b):\n    return a + b",  # Python for a JavaScript task
        "function add(a, b) {\n  return a + b;\n}",
        "foo(a, b);",  # parses as both: its own language's
        "def broken(:",  # parses as neither
        "",
    ]
    own = [False, True, True, False, False]
    assert wrong_language_flags(js_task, "javascript", own) == [True, False, False, False, False]
    python_task = ["function add(a, b) {\n  return a + b;\n}", "def add(a, b):\n    return a + b"]
    assert wrong_language_flags(python_task, "python", [False, True]) == [True, False]
    assert wrong_language_flags(python_task, "python", None) is None  # no own parse flags, no check


def test_java_and_csharp_methods_are_told_apart_only_by_syntax_the_other_lacks():
    java = ["public void close() throws IOException { stream.close(); }", "public int size() { return n; }"]
    csharp = ["public override string ToString() { return name; }", "public int Size() { return n; }"]
    # the second of each is valid in both languages: it counts as the task's own
    assert wrong_language_flags(java, "c_sharp", parse_flags(java, "c_sharp")) == [True, False]
    assert wrong_language_flags(csharp, "java", parse_flags(csharp, "java")) == [True, False]


def test_score_predictions_reports_the_checks_and_their_per_example_flags(tokenizer):
    predictions = ["def add(a, b):\n    return a + b", "getgetgetgetget", "function f() {\n  return 1;\n}"]
    references = ["function add(a, b) {\n  return a + b;\n}"] * 3
    produced = [Generation(subwords(tokenizer, p), ended=i != 1) for i, p in enumerate(predictions)]
    result = score_predictions(predictions, references, "javascript", generations=produced)
    corpus, per_example = result["corpus"], result["per_example"]
    assert per_example["loops"] == per_example["truncated"] == [False, True, False]
    assert per_example["wrong_language"] == [True, False, False]  # "getget..." is an identifier in both
    assert corpus["looping_share"] == corpus["truncated_share"] == corpus["wrong_language_share"] == 1 / 3
    without = score_predictions(predictions, references, "javascript")["corpus"]
    assert without["looping_share"] is None and without["truncated_share"] is None
    assert without["wrong_language_share"] == 1 / 3  # from the text alone
    summaries = score_predictions(["Add two numbers."], ["Adds them."], None)["corpus"]
    assert summaries["wrong_language_share"] is None
    with pytest.raises(ValueError, match="must pair up"):
        score_predictions(predictions, references, "javascript", generations=produced[:2])


def test_generations_are_the_ids_before_eos_and_whether_it_came():
    # the generated steps, EOS 2; the last sequence never ends (it ran to the limit)
    output = torch.tensor([[5, 6, 2, 0, 0], [2, 0, 0, 0, 0], [7, 7, 7, 7, 7]])
    assert generations(output, eos_token_id=2) == [
        Generation((5, 6), True),
        Generation((), True),
        Generation((7, 7, 7, 7, 7), False),
    ]
    assert generated_tokens(output, eos_token_id=2) == 3 + 1 + 5
    assert generations(output, eos_token_id=None)[1] == Generation((2, 0, 0, 0, 0), False)
