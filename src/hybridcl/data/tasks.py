"""The task registry: what each task of a stream reads, what it writes, and which metric heads its report.

A task is data plus a role. Its kind (an entry of TASK_KINDS) says where its data comes from and how it
is read, which fields are input and target, the languages of both (None: natural language) and its
headline metric; a subtask picks one dataset of the kind (a language, a translation pair, a size):

    tasks = stream_tasks(cfg.data)      # Task per stream entry, in training order
    sources = resolve_task_sources(cfg.data, tasks, ("train", "valid"))
    data = load_task(cfg.data, tasks[0], sources, "valid")     # TaskData of Pairs

A stream is `data.tasks` (CodeTask-CL's names, `<kind>_<subtask>`: `concode_none`, `translate_java-cs`,
`summarize_ruby`, `refine_small`), or, when that is empty, CodeSearchNet's `data.languages` in
`data.direction`, each task keyed by its language as before. Adding a task kind is one TaskKind here: a
reader that gives hybridcl.data.schema.Pair items (`load`) and what pins its files (`resolve`).
"""

from __future__ import annotations

from collections.abc import Callable, Sequence
from dataclasses import asdict, dataclass, replace

from hybridcl.data import codexglue
from hybridcl.data.csn import TaskData, load_task_data
from hybridcl.data.pinning import DataSource
from hybridcl.data.schema import Pair, Record
from hybridcl.data.source import resolve_data
from hybridcl.settings import LANGUAGES, ConfigError, DataConfig, task_cue

CSN_DATA = "data"  # the sources key of a CodeSearchNet stream's one source (every language's files)


@dataclass(frozen=True)
class Task:
    """One task of a stream, resolved: what the results, the report and the runner know of it."""

    key: str  # the results' name: a CodeSearchNet language, or `<kind>_<subtask>`
    kind: str
    subtask: str
    input_language: str | None  # None: natural language
    target_language: str | None
    headline: str  # the metric the benchmark reports for it (hybridcl.metrics.REGISTRY)
    cue: str  # what starts each source under data.task_prefix

    def as_record(self) -> dict:
        return asdict(self)


Languages = tuple[str | None, str | None]
Load = Callable[[DataConfig, Task, DataSource, str], TaskData]
Resolve = Callable[[DataConfig, Task, Sequence[str]], DataSource]


@dataclass(frozen=True)
class TaskKind:
    name: str
    description: str  # what the model reads and writes, for messages and docs
    subtasks: tuple[str, ...]
    languages: Callable[[str], Languages]  # subtask -> (input language, target language)
    headline: str
    cue: Callable[[str], str]  # subtask -> the cue
    load: Load
    resolve: Resolve | None = None  # None: CodeSearchNet, one source holding every language of the stream

    def task(self, subtask: str, key: str) -> Task:
        source, target = self.languages(subtask)
        return Task(key, self.name, subtask, source, target, self.headline, self.cue(subtask))


# ------------------------------------------------------------------------------- CodeSearchNet


def _csn_languages(direction: str) -> Callable[[str], Languages]:
    return lambda language: (None, language) if direction == "generate" else (language, None)


def _load_csn(direction: str) -> Load:
    def load(cfg: DataConfig, task: Task, source: DataSource, eval_split: str) -> TaskData:
        data = load_task_data(cfg, task.subtask, source=source, eval_split=eval_split)
        return replace(
            data, task=task.key, train=csn_pairs(data.train, direction), valid=csn_pairs(data.valid, direction)
        )

    return load


def csn_pairs(records: Sequence[Record], direction: str) -> list[Pair]:
    """CodeSearchNet records as a direction's pairs: generate reads the docstring and writes the code."""
    pairs = []
    for record in records:
        source, target = (record.docstring, record.code) if direction == "generate" else (record.code, record.docstring)
        pairs.append(Pair(record.url or f"{record.repo}:{record.path}:{record.func_name}", source, target))
    return pairs


def _csn_kind(direction: str) -> TaskKind:
    return TaskKind(
        name=f"csn-{direction}",
        description=f"CodeSearchNet, {'docstring -> code' if direction == 'generate' else 'code -> docstring'}",
        subtasks=LANGUAGES,
        languages=_csn_languages(direction),
        headline="bleu",
        cue=lambda language: task_cue(direction, language),
        load=_load_csn(direction),
    )


# ------------------------------------------------------------------------------- CodeXGLUE (CodeTask-CL)


def _codexglue_cue(kind: str) -> Callable[[str], str]:
    """CodeT5's `--add_task_prefix` format, which CodeTask-CL's runs use: `<translate> <java-cs> `."""
    return lambda subtask: f"<{kind}> <{'None' if subtask == 'none' else subtask}> "


def _codexglue_kind(kind: str, description: str, languages: Callable[[str], Languages], headline: str) -> TaskKind:
    return TaskKind(
        name=kind,
        description=description,
        subtasks=codexglue.SUBTASKS[kind],
        languages=languages,
        headline=headline,
        cue=_codexglue_cue(kind),
        resolve=lambda cfg, task, splits: codexglue.resolve_codexglue(cfg, task.kind, task.subtask, splits),
        load=lambda cfg, task, source, split: codexglue.load_pair_task(
            cfg, task.key, task.kind, task.subtask, source, split
        ),
    )


def _translation_languages(pair: str) -> Languages:
    names = {"java": "java", "cs": "c_sharp"}
    source, target = pair.split("-")
    return names[source], names[target]


TASK_KINDS: dict[str, TaskKind] = {
    kind.name: kind
    for kind in (
        _csn_kind("generate"),
        _csn_kind("summarize"),
        _codexglue_kind("concode", "CONCODE, natural language -> Java", lambda _: (None, "java"), "codexglue_bleu"),
        _codexglue_kind(
            "translate", "CodeXGLUE code translation, Java <-> C#", _translation_languages, "codexglue_bleu"
        ),
        _codexglue_kind(
            "summarize", "CodeXGLUE code-to-text, code -> docstring", lambda language: (language, None), "smooth_bleu"
        ),
        _codexglue_kind("refine", "Bugs2Fix, buggy Java -> fixed Java", lambda _: ("java", "java"), "codexglue_bleu"),
    )
}
STREAM_KINDS = tuple(name for name in TASK_KINDS if not name.startswith("csn-"))  # named in data.tasks


# ------------------------------------------------------------------------------- streams


def stream_tasks(cfg: DataConfig) -> tuple[Task, ...]:
    """The config's tasks in training order: data.tasks, or CodeSearchNet's languages in data.direction."""
    if not cfg.tasks:
        kind = TASK_KINDS[f"csn-{cfg.direction}"]
        return tuple(kind.task(language, language) for language in cfg.languages)
    return tuple(parse_task(name) for name in cfg.tasks)


def parse_task(name: str) -> Task:
    """`translate_java-cs` -> its Task; an unknown kind or subtask is a ConfigError listing the known ones."""
    kind_name, _, subtask = name.partition("_")
    kind = TASK_KINDS.get(kind_name) if kind_name in STREAM_KINDS else None
    if kind is None:
        known = ", ".join(f"{k}_<{'|'.join(TASK_KINDS[k].subtasks)}>" for k in STREAM_KINDS)
        raise ConfigError(f"data.tasks: unknown task {name!r}; a task is <kind>_<subtask>, one of {known}")
    if subtask not in kind.subtasks:
        raise ConfigError(f"data.tasks: {name!r} has no subtask {subtask!r}; {kind_name} has {list(kind.subtasks)}")
    return kind.task(subtask, name)


def source_key(task: Task) -> str:
    """The key of a task's data in the run's sources: one for a CodeSearchNet stream, one per task otherwise."""
    return CSN_DATA if TASK_KINDS[task.kind].resolve is None else f"data {task.key}"


def resolve_task_sources(cfg: DataConfig, tasks: Sequence[Task], splits: Sequence[str]) -> dict[str, DataSource]:
    """Each source key's DataSource, pinned, naming the files of `splits` of the tasks it serves."""
    csn = [task.subtask for task in tasks if source_key(task) == CSN_DATA]
    sources = {CSN_DATA: resolve_data(cfg, csn, splits)} if csn else {}
    for task in tasks:
        if source_key(task) != CSN_DATA:
            sources[source_key(task)] = TASK_KINDS[task.kind].resolve(cfg, task, splits)
    return sources


def task_texts(task: Task, pairs: Sequence[Pair], task_prefix: bool) -> tuple[list[str], list[str]]:
    """The texts the model reads (each with the task's cue under data.task_prefix) and those it should write."""
    cue = task.cue if task_prefix else ""
    return [cue + pair.source for pair in pairs], [pair.target for pair in pairs]


def prompt_template(cfg: DataConfig, task: Task) -> str:
    """The prompt a causal base reads the task's source in: data.prompt_summarize when the task writes natural
    language (a summary), data.prompt_generate when it writes code."""
    return cfg.prompt_summarize if task.target_language is None else cfg.prompt_generate


def load_task(cfg: DataConfig, task: Task, sources: dict[str, DataSource], eval_split: str) -> TaskData:
    """The sampled train and evaluation Pairs of one task, read from its pinned source."""
    return TASK_KINDS[task.kind].load(cfg, task, sources[source_key(task)], eval_split)
