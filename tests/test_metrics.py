"""Metrics equal their reference libraries on the same inputs (docs/design.md section 3), plus hand-checkable cases."""

import importlib.util
import logging
import math
import socket
import statistics

import nltk
import pytest
import sacrebleu
from codebleu import calc_codebleu
from nltk.translate.meteor_score import meteor_score

from hybridcl.metrics import (
    METRICS,
    OUTPUT_STATS,
    PARSED_METRICS,
    WordNetMissingError,
    require_wordnet,
    score_predictions,
)
from hybridcl.metrics import (
    codebleu as our_codebleu,
)
from hybridcl.metrics.meteor import tokenize

PY_REFS = [
    "def add(a, b):\n    total = a + b\n    return total\n",
    "def first_word(text):\n    words = text.split()\n    if not words:\n        return None\n    return words[0]\n",
    "def scale(values, factor=2):\n    out = []\n"
    "    for v in values:\n        out.append(v * factor)\n    return out\n",
    "def is_even(n):\n    return n % 2 == 0\n",
    "def greet(name):\n    message = 'Hello, ' + name\n    print(message)\n    return message\n",
]
PY_PREDS = [
    "def add(a, b):\n    total = a + b\n    return total\n",  # identical
    "def first_word(s):\n    parts = s.split()\n    return parts[0]\n",  # renamed, shorter
    "def scale(values, factor=2):\n    return [v * factor for v in values]\n",  # same meaning, other AST
    "def is_even(n):\n    return n % 2 ==",  # truncated: unparsable
    "",  # empty generation
]
JS_REFS = [
    "function add(a, b) {\n  const total = a + b;\n  return total;\n}",
    "function last(items) {\n  if (!items.length) { return null; }\n  return items[items.length - 1];\n}",
    "function double(xs) {\n  return xs.map(function (x) { return x * 2; });\n}",
]
JS_PREDS = [
    "function add(a, b) {\n  const total = a + b;\n  return total;\n}",
    "function last(arr) {\n  return arr[arr.length - 1];\n}",
    "function double(xs) {\n  return xs.map(x => x * 2;\n}",  # broken: unbalanced parenthesis
]
# CONCODE's, Bugs2Fix's and CodeXGLUE translation's shape: single methods, Java and C#
JAVA_REFS = [
    "int function ( int arg0 ) { int loc0 = arg0 * 2 ; return loc0 ; }",
    "public void METHOD_1 ( TYPE_1 VAR_1 ) { if ( VAR_1 != null ) { VAR_2 . add ( VAR_1 ) ; } }",
    "public String getName() {return name;}",
]
JAVA_PREDS = [
    "int function ( int arg0 ) { return arg0 * 2 ; }",
    "public void METHOD_1 ( TYPE_1 VAR_1 ) { VAR_2 . add ( VAR_1 ) ; }",
    "public String getName() {return name +;}",  # broken: no operand
]
CS_REFS = [
    "public virtual string GetName(){return name;}",
    "public override int Count(){int total = 0;foreach (var item in items){total += item.Size;}return total;}",
    'public Request(): base("svc", "2020-01-01"){Method = MethodType.POST;}',
]
CS_PREDS = [
    "public virtual string GetName(){return name;}",
    "public override int Count(){int total = 0;foreach (var item in items){total += item.Size;}return total;",  # no }
    'public Request(): base("svc"){Method = MethodType.GET;}',  # a constructor: parses only inside a class
]
DOC_REFS = ["Returns the sum of two numbers.", "Start the server and wait for connections.", "Parse a config file."]
DOC_PREDS = ["Return the sum of two values.", "Begin the server.", ""]


def _sacrebleu_sentences(preds, refs):
    return [sacrebleu.sentence_bleu(p, [r]).score / 100 for p, r in zip(preds, refs)]


def _nltk_meteors(preds, refs):
    # the reference call: NLTK defaults, our documented tokenisation
    return [meteor_score([tokenize(r)], tokenize(p)) for p, r in zip(preds, refs)]


# --- each metric equals its reference implementation ------------------------------------------


@pytest.mark.parametrize(
    "preds, refs, target_language",
    [(PY_PREDS, PY_REFS, "python"), (JS_PREDS, JS_REFS, "javascript"), (DOC_PREDS, DOC_REFS, None)],
)
def test_bleu_and_meteor_equal_sacrebleu_and_nltk(preds, refs, target_language):
    result = score_predictions(preds, refs, target_language)
    assert result["corpus"]["bleu"] == sacrebleu.corpus_bleu(preds, [refs]).score / 100
    assert result["per_example"]["bleu"] == _sacrebleu_sentences(preds, refs)
    expected_meteor = _nltk_meteors(preds, refs)
    assert result["per_example"]["meteor"] == expected_meteor
    assert result["corpus"]["meteor"] == sum(expected_meteor) / len(expected_meteor)
    assert 0 < result["corpus"]["bleu"] < 1 and 0 < result["corpus"]["meteor"] < 1


@pytest.mark.parametrize(
    "preds, refs, lang",
    [
        (PY_PREDS, PY_REFS, "python"),
        (JS_PREDS, JS_REFS, "javascript"),
        (JAVA_PREDS, JAVA_REFS, "java"),
        (CS_PREDS, CS_REFS, "c_sharp"),
    ],
)
def test_codebleu_and_ast_similarity_equal_calc_codebleu(preds, refs, lang):
    result = score_predictions(preds, refs, lang, per_example_codebleu=True)
    expected = calc_codebleu(refs, preds, lang, weights=(0.25, 0.25, 0.25, 0.25))
    assert result["corpus"]["codebleu"] == expected["codebleu"]
    assert result["corpus"]["ast_similarity"] == expected["syntax_match_score"]
    assert result["codebleu_components"] == expected
    assert 0 < expected["syntax_match_score"] < 1  # a non-trivial case, not 0 == 0
    assert result["per_example"]["codebleu"] == [calc_codebleu([r], [p], lang)["codebleu"] for p, r in zip(preds, refs)]


def test_meteor_uses_wordnet_synonyms_and_stems():
    # "start"/"begin" match only through WordNet, "values"/"value" only through the stemmer
    result = score_predictions(["start", "values"], ["begin", "value"], None)
    assert result["per_example"]["meteor"] == [0.5, 0.5]  # 1 match of 1 word: fmean 1, penalty 0.5
    assert meteor_score([["begin"]], ["start"], wordnet=_NoSynonyms()) == 0.0  # and without WordNet, none


class _NoSynonyms:
    def synsets(self, word):
        return []


def test_meteor_tokenisation_splits_punctuation_not_identifiers():
    assert tokenize("foo_bar(x, y)") == ["foo_bar", "(", "x", ",", "y", ")"]
    assert tokenize("Returns a list.") == ["Returns", "a", "list", "."]
    # formatting is not content: re-spaced code scores like identical code
    spaced = score_predictions(["f( x )"], ["f(x)"], "python")
    same = score_predictions(["f(x)"], ["f(x)"], "python")
    assert spaced["per_example"]["meteor"] == same["per_example"]["meteor"]
    assert meteor_score([["f(x)"]], ["f(", "x", ")"]) == 0.0  # what plain str.split() would have given


# --- hand-checkable cases --------------------------------------------------------------------


@pytest.mark.parametrize("lang, code", [("python", PY_REFS[1]), ("javascript", JS_REFS[1])])
def test_identical_code_scores_perfectly(lang, code):
    result = score_predictions([code, code], [code, code], lang)
    corpus = result["corpus"]
    # sacrebleu's exp(sum of logs) can land a hair above 100 (1.0000000000000004): kept as it is
    assert corpus["bleu"] == pytest.approx(1.0, abs=1e-12) and corpus["bleu"] == result["per_example"]["bleu"][0]
    assert corpus["exact_match"] == 1.0 and corpus["pass_rate"] == 1.0
    assert corpus["codebleu"] == pytest.approx(1.0) and corpus["ast_similarity"] == 1.0
    # NLTK's fragmentation penalty keeps one perfect chunk just below 1: 1 - 0.5 / n**3
    n = len(tokenize(code))
    assert 0.99 < corpus["meteor"] < 1.0
    assert corpus["meteor"] == pytest.approx(1 - 0.5 / n**3)


def test_empty_prediction_scores_zero_but_codebleu_keeps_its_dataflow_quirk():
    result = score_predictions([""], [PY_REFS[0]], "python")
    corpus = result["corpus"]
    assert corpus["bleu"] == 0.0 and corpus["meteor"] == 0.0 and corpus["exact_match"] == 0.0
    assert corpus["pass_rate"] == 0.0 and corpus["ast_similarity"] == 0.0
    assert result["per_example"]["parses"] == [False]
    # calc_codebleu counts a dataflow score of 0 as 1 (`dataflow_match_score or 1`): kept, and said
    assert corpus["codebleu"] == calc_codebleu([PY_REFS[0]], [""], "python")["codebleu"] == 0.25
    assert result["codebleu_components"]["dataflow_match_score"] == 0.0
    assert "counts it as 1" in result["notes"]["codebleu"]


def test_all_empty_predictions_are_scored_not_crashed():
    result = score_predictions(["", "  "], PY_REFS[:2], "python")
    assert result["corpus"]["bleu"] == 0.0 and result["corpus"]["meteor"] == 0.0
    assert result["corpus"]["pass_rate"] == 0.0  # whitespace-only is no program either
    assert result["corpus"]["codebleu"] == calc_codebleu(PY_REFS[:2], ["", "  "], "python")["codebleu"]


def test_pass_rate_python_and_javascript():
    py = score_predictions(["def f(:", "    return x + 1\n", "def g(x):\n    return x\n"], ["a", "b", "c"], "python")
    assert py["per_example"]["parses"] == [False, True, True]  # a body snippet parses as-is
    assert py["corpus"]["pass_rate"] == pytest.approx(2 / 3)
    js = score_predictions(JS_PREDS, JS_REFS, "javascript")
    assert js["per_example"]["parses"] == [True, True, False]
    assert js["corpus"]["pass_rate"] == pytest.approx(2 / 3)
    assert js["reference_pass_rate"] == 1.0
    broken = score_predictions(["function f(a) { return a + ; }"], ["x"], "javascript")
    assert broken["corpus"]["pass_rate"] == 0.0


@pytest.mark.parametrize(
    "preds, refs, lang, parses",
    [(JAVA_PREDS, JAVA_REFS, "java", [True, True, False]), (CS_PREDS, CS_REFS, "c_sharp", [True, False, True])],
)
def test_pass_rate_java_and_csharp_methods(preds, refs, lang, parses):
    result = score_predictions(preds, refs, lang)
    assert result["per_example"]["parses"] == parses
    assert result["corpus"]["pass_rate"] == pytest.approx(2 / 3)
    assert result["reference_pass_rate"] == 1.0
    assert result["language"] == lang and "direction" not in result


def test_javascript_class_methods_pass_and_broken_methods_do_not():
    methods = ["async load(path) {\n  return await read(path);\n}", "get size() { return this.n; }"]
    broken = ["load(path) {\n  return read(path +;\n}", "return a + ;", "foo: function (a) { return a + ; }"]
    result = score_predictions(methods + broken, ["x"] * 5, "javascript")
    assert result["per_example"]["parses"] == [True, True, False, False, False]


def test_exact_match_normalises_whitespace_only():
    preds = ["def f():\n    return 1", "def f(): return  1 ", "def f(): return 2", "Def f(): return 1"]
    result = score_predictions(preds, ["def f(): return 1"] * 4, "python")
    assert result["per_example"]["exact_match"] == [True, True, False, False]
    assert result["corpus"]["exact_match"] == 0.5


# --- None where a metric is not defined ------------------------------------------------------


def test_summarisation_has_no_code_metrics():
    result = score_predictions(DOC_PREDS, DOC_REFS, None, per_example_codebleu=True)
    for name in PARSED_METRICS:
        assert result["corpus"][name] is None
        assert result["notes"][name] == "natural-language targets; this metric is for code"
    assert result["language"] is None and "direction" not in result
    assert result["codebleu_components"] is None and result["reference_pass_rate"] is None
    assert result["per_example"]["parses"] is None and result["per_example"]["codebleu"] is None
    assert set(result["corpus"]) == set(METRICS) | set(OUTPUT_STATS)
    assert result["corpus"]["bleu"] > 0 and result["corpus"]["meteor"] > 0


@pytest.mark.parametrize("lang", ["go", "php", "ruby"])
def test_languages_without_a_grammar_get_none_with_a_reason(lang):
    if importlib.util.find_spec(f"tree_sitter_{lang}") is not None:
        pytest.skip(f"tree_sitter_{lang} is installed here")
    code = "x = compute ( a , b , c )"
    result = score_predictions([code], [code], lang)
    for name in PARSED_METRICS:
        assert result["corpus"][name] is None
        assert "not installed" in result["notes"][name]
    assert result["corpus"]["bleu"] == pytest.approx(1.0) and result["corpus"]["exact_match"] == 1.0


# --- shapes and bad input --------------------------------------------------------------------


def test_per_example_scores_have_one_entry_per_prediction():
    result = score_predictions(PY_PREDS, PY_REFS, "python")
    assert result["n"] == len(PY_PREDS)
    for name in ("bleu", "meteor", "exact_match", "parses"):
        assert len(result["per_example"][name]) == len(PY_PREDS), name
    assert result["per_example"]["codebleu"] is None  # opt-in
    assert result["per_example"]["exact_match"] == [True, False, False, False, False]
    assert result["corpus"]["exact_match"] == 0.2
    assert set(result["seconds"]) >= {"bleu", "meteor", "codebleu", "pass_rate"}


def test_a_registered_metric_is_scored_and_kept_per_example(monkeypatch):
    """Adding a metric is one registry entry: score_predictions picks it up, code-only rules included."""
    from hybridcl.metrics.registry import REGISTRY, Metric

    def share_longer(s):
        return [len(p) > len(r) for p, r in zip(s.predictions, s.references)]

    toy = Metric("longer", "longer", lambda s: sum(share_longer(s)) / s.n, share_longer, targets="code")
    monkeypatch.setitem(REGISTRY, toy.name, toy)
    scored = score_predictions(["abcd", "a"], ["ab", "abc"], "python")
    assert scored["corpus"]["longer"] == 0.5
    assert scored["per_example"]["longer"] == [True, False]
    summarised = score_predictions(["abcd", "a"], ["ab", "abc"], None)
    assert summarised["corpus"]["longer"] is None and "natural-language" in summarised["notes"]["longer"]


def test_the_registry_names_every_metric_once_with_a_label():
    from hybridcl.metrics.registry import REGISTRY

    assert METRICS == tuple(REGISTRY)
    assert METRICS[:6] == ("bleu", "meteor", "codebleu", "ast_similarity", "pass_rate", "exact_match")
    assert set(PARSED_METRICS) == {"codebleu", "ast_similarity", "pass_rate"} | {
        name for name in METRICS if name.startswith("codebleu_")
    }
    assert all(metric.label for metric in REGISTRY.values())


@pytest.mark.parametrize(
    "preds, refs, target_language, error, message",
    [
        (["a", "b"], ["a"], "python", ValueError, "2 predictions but 1 references"),
        ([], [], "python", ValueError, "no predictions"),
        (["a"], ["a"], "Python", ValueError, "'Python' is not one of .*'c_sharp'"),
        (["a"], ["a"], "csharp", ValueError, "'csharp' is not one of .*None for natural-language"),
        ([None], ["a"], None, TypeError, "prediction 0"),
    ],
)
def test_bad_input_is_an_error(preds, refs, target_language, error, message):
    with pytest.raises(error, match=message):
        score_predictions(preds, refs, target_language)


# --- codebleu's logging, WordNet, determinism ------------------------------------------------


def test_codebleu_no_dataflow_warning_is_reported_not_logged(monkeypatch, capfd):
    root = logging.getLogger()
    monkeypatch.setattr(root, "handlers", [])  # as in a script that never configured logging
    refs, preds = ["pass", "x"], ["pass", "y"]
    result = score_predictions(preds, refs, "python")
    assert root.handlers == []  # codebleu's logging.warning() did not run basicConfig()
    assert capfd.readouterr().err == ""
    assert "no data-flows" in result["notes"]["codebleu"]
    assert result["corpus"]["codebleu"] == calc_codebleu(refs, preds, "python")["codebleu"]


def test_hash_seed_note(monkeypatch):
    monkeypatch.setenv("PYTHONHASHSEED", "0")
    assert our_codebleu.hash_seed_note() is None
    monkeypatch.delenv("PYTHONHASHSEED")
    assert "PYTHONHASHSEED" in our_codebleu.hash_seed_note()


def test_missing_wordnet_is_a_startup_error_that_says_how_to_install(monkeypatch, tmp_path):
    require_wordnet()  # present in this venv
    from nltk.corpus import wordnet

    if hasattr(wordnet, "_unload"):  # forget the loaded corpus, so nothing in memory hides the absence
        wordnet._unload()

    def no_network(*args, **kwargs):
        raise AssertionError("NLTK tried to reach the network")

    monkeypatch.setattr(socket.socket, "connect", no_network)
    monkeypatch.setattr(nltk, "download", no_network)
    monkeypatch.setattr(nltk.data, "path", [str(tmp_path)])
    with pytest.raises(WordNetMissingError) as err:
        require_wordnet()
    assert "scripts/install-wordnet.sh .venv" in str(err.value)
    assert "python -m nltk.downloader wordnet" in str(err.value)
    with pytest.raises(WordNetMissingError):  # scoring refuses too, rather than a METEOR without synonyms
        score_predictions(["a"], ["a"], None)


def test_scores_are_stable_across_calls():
    first = score_predictions(PY_PREDS, PY_REFS, "python")
    second = score_predictions(PY_PREDS, PY_REFS, "python")
    assert first["corpus"] == second["corpus"] and first["per_example"] == second["per_example"]
    assert statistics.fmean(first["per_example"]["meteor"]) == first["corpus"]["meteor"]


# --- CodeXGLUE's BLEU, against values worked out by hand ---------------------------------------


def test_codexglue_corpus_bleu_by_hand():
    from hybridcl.metrics.codexglue import corpus_bleu_smoothed

    # "a b c d" vs "a b c e": matches 3/4, 2/3, 1/2, 0/1 -> add-one 4/5, 3/4, 2/3, 1/2; same length, bp 1
    assert corpus_bleu_smoothed(["a b c d"], ["a b c e"]) == pytest.approx((4 / 5 * 3 / 4 * 2 / 3 * 1 / 2) ** 0.25)
    # "a b" vs "a b c d": every smoothed precision 1; c = 2 <= r = 4 -> bp exp(1 - 4/2)
    assert corpus_bleu_smoothed(["a b"], ["a b c d"]) == pytest.approx(math.exp(-1))
    # the two as one corpus: counts add up (5/6, 3/4, 1/2, 0/1 -> 6/7, 4/5, 2/3, 1/2), c = 6, r = 8
    both = corpus_bleu_smoothed(["a b c d", "a b"], ["a b c e", "a b c d"])
    assert both == pytest.approx((6 / 7 * 4 / 5 * 2 / 3 * 1 / 2) ** 0.25 * math.exp(1 - 8 / 6))
    # whitespace tokens: "x+1" is one token (sacrebleu's tokenizer would split it)
    assert corpus_bleu_smoothed(["return x+1"], ["return x + 1"]) == pytest.approx(
        (2 / 3 * 1 / 2 * 1 * 1) ** 0.25 * math.exp(1 - 4 / 2)
    )
    assert corpus_bleu_smoothed([""], ["a b"]) == 0.0


def test_codexglue_smooth_bleu_by_hand():
    from hybridcl.metrics.codexglue import nist_tokens, smooth_bleu

    assert nist_tokens("Returns the Sum.") == ["returns", "the", "sum", "."]
    # candidate 4 tokens, reference 7: matches 4/4 (unsmoothed), 2/3, 1/2, 0/1 -> (2+1)/(3+1), 2/3, 1/2;
    # bp = 1 - (7 + 1) / (4 + 1)
    expected = (1 * 3 / 4 * 2 / 3 * 1 / 2) ** 0.25 * math.exp(1 - 8 / 5)
    assert smooth_bleu("Returns the sum.", "returns the sum of a list.") == pytest.approx(expected)
    assert smooth_bleu("a b c", "a b c") == pytest.approx(1.0)
    assert smooth_bleu("x y", "a b c") < 1e-70  # no unigram matches
    assert smooth_bleu("", "a b") == pytest.approx(math.exp(1 - 3 / 1))  # the published script's empty case


def test_codexglue_metrics_by_kind_of_target():
    code = score_predictions(PY_PREDS, PY_REFS, "python")
    assert code["corpus"]["codexglue_bleu"] > 0 and code["corpus"]["smooth_bleu"] is None
    assert code["notes"]["smooth_bleu"] == "code targets; this metric is for natural-language summaries"
    text = score_predictions(DOC_PREDS, DOC_REFS, None)
    assert text["corpus"]["smooth_bleu"] > 0 and text["corpus"]["codexglue_bleu"] is None


def test_codebleu_components_beside_the_combined_score():
    result = score_predictions(PY_PREDS, PY_REFS, "python")
    parts = result["codebleu_components"]
    for name, key in (
        ("codebleu_ngram", "ngram_match_score"),
        ("codebleu_weighted_ngram", "weighted_ngram_match_score"),
        ("ast_similarity", "syntax_match_score"),
        ("codebleu_dataflow", "dataflow_match_score"),
    ):
        assert result["corpus"][name] == parts[key]
    assert result["corpus"]["codebleu"] == pytest.approx(
        0.25 * sum(parts[k] for k in ("ngram_match_score", "weighted_ngram_match_score", "syntax_match_score"))
        + 0.25 * (parts["dataflow_match_score"] or 1)
    )
