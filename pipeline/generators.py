"""Where post texts come from: a drafts library (the default) or an OpenAI-compatible chat model.

Both implement `Generator`. The planner asks for one draft at a time for an account, a topic, a format and a
kind (single or thread); a generator returns a `GeneratedDraft` or None with `last_reason` set.

The drafts library (`DraftsLibrary`) reads a folder of `*.jsonl` and `*.md` files:

    {"topic": "python", "format": "tip", "text": "..."}              one draft per line (JSON lines)
    {"topic": "python", "format": "how-to", "parts": ["1/ ...", "2/ ..."], "key": "optional-id"}

    ## python / tip                                                  Markdown: a heading per draft,
    Text of the post.                                                a line of three dashes between
                                                                     the parts of a thread
    ## python / how-to
    First part.
    ---
    Second part.
    ![alt text of the image](chart.png)                              an image line attaches a file to its part

Media: a JSON-lines draft gives `"media": [{"path": "chart.png", "alt": "..."}]` beside `"text"`, or parts as
`{"text": ..., "media": [...]}`; paths are relative to the drafts folder and must stay inside it. Each file
is checked like `pipeline enqueue --media` (a bad one drops its draft, with the reason) and copied into the
media store when the planner enqueues the draft.

A draft is *claimed* by inserting its key into `used_drafts` before it is handed out (the primary key decides
between two concurrent planners) and released again if it could not be enqueued, so a draft reaches at most
one queue, ever, and in the steady state "used" means "enqueued".

The LLM generator (`LLMGenerator`) spends at most `daily_token_budget` tokens per UTC day (counted in
`llm_spend` from `usage.total_tokens`), talks to any OpenAI-compatible server through the `openai` package
(its client retries 429 and 5xx with jittered backoff, honouring Retry-After, and applies the timeout), and validates every output: X's weighted length, and not a near-duplicate (word-shingle
Jaccard >= 0.6) of anything posted or queued for the account in the last `recent_days`. A rejected output is
regenerated with the reason as feedback, up to `max_regenerations` times, then dropped with the reason.
"""

from __future__ import annotations

import json
import logging
import random
import re
from collections.abc import Iterable
from dataclasses import dataclass
from datetime import datetime, timedelta
from pathlib import Path
from typing import Any, Protocol, runtime_checkable

import sqlalchemy as sa
from sqlalchemy.engine import Connection, Engine

from pipeline import schema as s
from pipeline.content import ContentError, fingerprint, normalise, validate_parts
from pipeline.db import db_now, transaction
from pipeline.inputs import InputError, MediaChecker, split_parts
from pipeline.media import MediaError, StagedMedia, check_post

log = logging.getLogger(__name__)

DEFAULT_DRAFTS_DIR = Path(__file__).parent / "drafts"
KINDS = ("single", "thread")
NEAR_DUPLICATE_JACCARD = 0.6

# What the LLM is asked to write about; the shipped drafts library uses the same topics and formats, so the
# learning loop's statistics carry over when an operator switches generators.
TOPICS: dict[str, str] = {
    "python": "practical Python: the standard library, typing, testing, packaging, performance",
    "data-engineering": "data pipelines, SQL, orchestration, data quality and warehouses",
    "devops": "deployments, observability, incidents, CI/CD and running services in production",
    "career": "working as a software engineer: code review, learning, interviews, teams",
    "open-source": "maintaining and contributing to open-source projects",
}
FORMATS: dict[str, str] = {
    "tip": "one concrete, actionable tip with a tiny example",
    "question": "a question to the audience that invites replies from practitioners",
    "opinion": "a clear, slightly contrarian opinion with the reason behind it",
    "story": "a short first-person story from real work with the lesson learned",
    "how-to": "step-by-step instructions for one specific task",
}


@dataclass(frozen=True)
class GeneratedDraft:
    """A candidate post. `key` identifies it (a drafts-library key, or an id for an LLM output)."""

    parts: tuple[str, ...]
    topic: str | None
    format: str | None
    key: str
    media: tuple[tuple[StagedMedia, ...], ...] = ()  # per part (drafts library only); () for none

    @property
    def kind(self) -> str:
        return "thread" if len(self.parts) > 1 else "single"

    @property
    def text(self) -> str:
        return "\n\n".join(self.parts)


@runtime_checkable
class Generator(Protocol):
    """What the planner needs. `last_reason` says why generate returned None; `rejected` collects outputs the
    generator threw away itself (reason, detail) for the plan report; `exhausted` means "stop asking"."""

    last_reason: str | None
    rejected: list[tuple[str, str]]
    exhausted: bool

    def generate(self, account: str, topic: str | None, format: str | None, kind: str) -> GeneratedDraft | None: ...

    def topics(self) -> list[str]: ...

    def formats(self) -> list[str]: ...

    def release(self, draft: GeneratedDraft) -> None: ...


# --------------------------------------------------------------------------- near-duplicates

_WORD = re.compile(r"\w+", re.UNICODE)


def shingles(text: str, k: int = 3) -> frozenset[tuple[str, ...]]:
    """Word k-shingles of the normalised, case-folded text (a text shorter than k words is one shingle)."""
    words = _WORD.findall(normalise(text).casefold())
    if not words:
        return frozenset()
    if len(words) < k:
        return frozenset({tuple(words)})
    return frozenset(tuple(words[i:i + k]) for i in range(len(words) - k + 1))


def jaccard(a: frozenset, b: frozenset) -> float:
    if not a or not b:
        return 0.0
    inter = len(a & b)
    return inter / (len(a) + len(b) - inter)


class ShingleIndex:
    """Recent texts of one account, as shingle sets; `most_similar` is the highest Jaccard against any of
    them (whole items and single parts, so a thread that repeats a recent single is caught)."""

    def __init__(self, texts: Iterable[str] = (), threshold: float = NEAR_DUPLICATE_JACCARD) -> None:
        self.threshold = threshold
        self._sets: list[frozenset] = []
        for text in texts:
            self.add(text)

    def add(self, text: str) -> None:
        sh = shingles(text)
        if sh:
            self._sets.append(sh)

    def most_similar(self, text: str) -> float:
        sh = shingles(text)
        return max((jaccard(sh, other) for other in self._sets), default=0.0)

    def __len__(self) -> int:
        return len(self._sets)


def recent_texts(engine: Engine, account: str, days: float = 14, now: datetime | None = None) -> list[str]:
    """Every item of the account that is live and recent: still pending (whatever its age), or created or
    posted within `days`. Whole items and their single parts, for near-duplicate checks."""
    items = s.content_items
    with engine.connect() as conn:
        now = now or db_now(conn)
        cutoff = now - timedelta(days=days)
        rows = conn.execute(
            sa.select(items.c.parts).where(
                items.c.account == account,
                items.c.state.not_in(s.DEAD_STATES),
                sa.or_(
                    items.c.state.in_([s.QUEUED, s.CLAIMED, s.POSTING, s.UNKNOWN, s.NEEDS_REVIEW]),
                    items.c.created_at >= cutoff,
                    items.c.posted_at >= cutoff,
                ),
            )
        ).all()
        tweet_texts = conn.execute(
            sa.select(s.tweets.c.text).where(s.tweets.c.account == account, s.tweets.c.posted_at >= cutoff)
        ).scalars().all()
    out: list[str] = []
    for (parts,) in rows:
        parts = list(parts or [])
        out.append(" ".join(parts))
        if len(parts) > 1:
            out.extend(parts)
    out.extend(tweet_texts)
    return out


# --------------------------------------------------------------------------- drafts library


class DraftsLibraryError(ValueError):
    """A drafts file is malformed; the message names the file and line."""


def _dialect_insert(conn: Connection, table: sa.Table) -> Any:
    if conn.dialect.name == "postgresql":
        from sqlalchemy.dialects.postgresql import insert
    else:
        from sqlalchemy.dialects.sqlite import insert
    return insert(table)


_LOADED: dict[tuple, tuple[list[GeneratedDraft], list[tuple[str, str]]]] = {}


def _draft_files(folder: Path) -> list[Path]:
    return [p for p in sorted(folder.iterdir())
            if p.suffix in (".jsonl", ".md") and not p.name.lower().startswith(("readme", "_", "."))]


def load_drafts(folder: Path) -> tuple[list[GeneratedDraft], list[tuple[str, str]]]:
    """Parse every `*.jsonl` and `*.md` file of a folder (sorted, non-recursive; README files skipped).

    Returns (valid drafts, [(reason, detail)] for invalid ones): a bad draft must not stop the good ones.
    The same text twice is one draft (its key is the content fingerprint unless the file gives a key).
    Cached per folder until a file in it changes: X's length check and media probes are slow enough to
    matter once per plan run.
    """
    folder = Path(folder)
    if not folder.is_dir():
        raise DraftsLibraryError(f"drafts folder {folder} does not exist; set PIPELINE_DRAFTS_DIR to a folder of .md or .jsonl files")
    files = _draft_files(folder)
    # Every file of the folder, media beside the drafts too: a replaced image is checked again.
    stamp = (str(folder.resolve()), *((p.name, p.stat().st_mtime_ns, p.stat().st_size)
                                      for p in sorted(folder.iterdir()) if p.is_file()))
    if stamp not in _LOADED:
        _LOADED[stamp] = _load_files(files)
    drafts, problems = _LOADED[stamp]
    return list(drafts), list(problems)


def _load_files(files: list[Path]) -> tuple[list[GeneratedDraft], list[tuple[str, str]]]:
    raw: list[tuple[Path, str, dict[str, Any]]] = []
    for path in files:
        raw.extend((path, where, entry) for where, entry in
                   (_parse_jsonl(path) if path.suffix == ".jsonl" else _parse_markdown(path)))
    drafts: list[GeneratedDraft] = []
    problems: list[tuple[str, str]] = []
    seen: set[str] = set()
    checkers: dict[Path, MediaChecker] = {}
    for path, where, entry in raw:
        checker = checkers.setdefault(path.parent, MediaChecker(path.parent, confined=True))
        try:
            texts, media = _entry_parts(entry, checker)
            clean = validate_parts([str(p) for p in texts])
            for i, part in enumerate(media, start=1):
                check_post([m.ref for m in part], "the draft" if len(media) == 1 else f"part {i}")
        except (ContentError, InputError, MediaError) as exc:
            problems.append(("invalid", f"{where}: {exc}"))
            continue
        hashes = [[m.ref.sha256 for m in part] for part in media]
        key = str(entry.get("key") or f"d-{fingerprint(clean, hashes)}")
        if len(key) > 64:
            problems.append(("invalid", f"{where}: key {key[:20]}... is longer than 64 characters"))
            continue
        if key in seen:
            problems.append(("duplicate", f"{where}: the same draft ({key}) appears twice"))
            continue
        seen.add(key)
        drafts.append(GeneratedDraft(parts=tuple(clean), topic=entry.get("topic") or None,
                                     format=entry.get("format") or None, key=key,
                                     media=tuple(tuple(p) for p in media) if any(media) else ()))
    return drafts, problems


def _entry_parts(entry: dict[str, Any], checker: MediaChecker) -> tuple[list[str], list[list[StagedMedia]]]:
    """Texts and checked media per part of one library entry ('text' + 'media', or 'parts')."""
    if entry.get("parts"):
        if not isinstance(entry["parts"], list):
            raise InputError("'parts' must be a list")
        return split_parts({"parts": entry["parts"], **({"media": entry["media"]} if "media" in entry else {})},
                           checker)
    if not entry.get("text"):
        return [], []
    return split_parts({"text": str(entry["text"]), "media": entry.get("media", [])}, checker)


def _parse_jsonl(path: Path) -> list[tuple[str, dict[str, Any]]]:
    out = []
    for n, line in enumerate(path.read_text(encoding="utf-8").splitlines(), start=1):
        if not line.strip() or line.lstrip().startswith("//"):
            continue
        try:
            entry = json.loads(line)
        except json.JSONDecodeError as exc:
            raise DraftsLibraryError(f"{path}:{n}: not valid JSON ({exc.msg})") from None
        if not isinstance(entry, dict):
            raise DraftsLibraryError(f"{path}:{n}: each line must be a JSON object")
        out.append((f"{path.name}:{n}", entry))
    return out


_IMAGE_LINE = re.compile(r"^\s*!\[(?P<alt>[^\]]*)\]\((?P<path>[^)\s]+)\)\s*$")  # ![alt](file.png)
_HEADING = re.compile(r"^##\s+(?P<topic>[^/{]+?)\s*/\s*(?P<format>[^{]+?)\s*(?:\{#(?P<key>[^}]+)\})?\s*$")


def _parse_markdown(path: Path) -> list[tuple[str, dict[str, Any]]]:
    out: list[tuple[str, dict[str, Any]]] = []
    current: dict[str, Any] | None = None
    buffer: list[str] = []
    images: list[dict[str, Any]] = []
    parts: list[dict[str, Any]] = []

    def flush_part() -> None:
        text = "\n".join(buffer).strip()
        if text or images:
            parts.append({"text": text, "media": list(images)})
        buffer.clear()
        images.clear()

    def flush_draft() -> None:
        if current is not None:
            flush_part()
            current["parts"] = list(parts)
            out.append((current.pop("where"), current))
        parts.clear()
        buffer.clear()
        images.clear()

    for n, line in enumerate(path.read_text(encoding="utf-8").splitlines(), start=1):
        heading = _HEADING.match(line)
        if heading:
            flush_draft()
            current = {"where": f"{path.name}:{n}", "topic": heading["topic"].strip(),
                       "format": heading["format"].strip(), "key": heading["key"]}
        elif line.startswith("# ") and current is None:
            continue  # file title
        elif line.strip() == "---" and current is not None:
            flush_part()
        elif current is not None and (image := _IMAGE_LINE.match(line)):
            images.append({"path": image["path"], **({"alt": image["alt"]} if image["alt"].strip() else {})})
        elif current is not None:
            buffer.append(line)
    flush_draft()
    return out


class DraftsLibrary:
    """Drafts from a folder, each handed out at most once across runs and processes (see module docstring)."""

    def __init__(self, engine: Engine, folder: Path | None = None, rng: random.Random | None = None) -> None:
        self.engine = engine
        self.folder = Path(folder) if folder else DEFAULT_DRAFTS_DIR
        self.drafts, self.problems = load_drafts(self.folder)
        self.rng = rng or random.Random()
        self.last_reason: str | None = None
        self.rejected: list[tuple[str, str]] = [(r, f"drafts library {d}") for r, d in self.problems]
        self.exhausted = False
        self.recent_days = 14

    def __repr__(self) -> str:
        return f"DraftsLibrary(folder={str(self.folder)!r}, drafts={len(self.drafts)})"

    def topics(self) -> list[str]:
        return sorted({d.topic for d in self.drafts if d.topic})

    def formats(self) -> list[str]:
        return sorted({d.format for d in self.drafts if d.format})

    def unused(self) -> list[GeneratedDraft]:
        """Drafts not yet claimed by any run."""
        with self.engine.connect() as conn:
            used = set(conn.execute(sa.select(s.used_drafts.c.draft_key)).scalars())
        return [d for d in self.drafts if d.key not in used]

    def generate(self, account: str, topic: str | None, format: str | None, kind: str) -> GeneratedDraft | None:
        """The best unused match, claimed for good. Preference: topic+format+kind, topic+kind, topic, kind,
        anything, so a dry topic never leaves a slot empty (the draft carries its real topic for learning)."""
        self.last_reason = None
        pool = self.unused()
        while pool:
            tiers = (
                lambda d: d.topic == topic and d.format == format and d.kind == kind,
                lambda d: d.topic == topic and d.kind == kind,
                lambda d: d.topic == topic,
                lambda d: d.kind == kind,
                lambda d: True,
            )
            for match in tiers:
                candidates = [d for d in pool if match(d)]
                if candidates:
                    break
            choice = self.rng.choice(candidates)
            if self._claim(choice.key):
                return choice
            pool = [d for d in pool if d.key != choice.key]  # another planner took it first
        self.exhausted = True
        self.last_reason = (f"the drafts library {self.folder} is used up ({len(self.drafts)} drafts); "
                            "add drafts or set PIPELINE_LLM_BASE_URL")
        return None

    def _claim(self, key: str) -> bool:
        with transaction(self.engine) as conn:
            stmt = _dialect_insert(conn, s.used_drafts).values(draft_key=key, used_at=db_now(conn))
            return conn.execute(stmt.on_conflict_do_nothing(index_elements=["draft_key"])).rowcount == 1

    def release(self, draft: GeneratedDraft) -> None:
        """Give a claimed draft back (it could not be enqueued), so it is not lost."""
        with transaction(self.engine) as conn:
            conn.execute(s.used_drafts.delete().where(s.used_drafts.c.draft_key == draft.key))


# --------------------------------------------------------------------------- LLM generator


class LLMError(RuntimeError):
    """The chat-completions endpoint failed (after retries) or answered something unusable."""


class BudgetExhausted(LLMError):
    """Today's token budget is spent; no call is made until the next UTC day."""


_SYSTEM = (
    "You write posts for the X (Twitter) account @{account}. Write in plain, specific, practitioner language; "
    "no hashtags unless essential, no emojis, no links, no quotation marks around the post. Each post must be at "
    "most 270 characters. Answer with JSON only: {{\"parts\": [\"...\"]}}."
)
_USER = (
    "Topic: {topic} ({topic_desc}).\nFormat: {format} ({format_desc}).\n{shape}\n"
    "It must not repeat or paraphrase any of these recent posts:\n{recent}"
)
_SHAPE = {
    "single": "Write ONE post: \"parts\" has exactly one string.",
    "thread": "Write a thread of 3 to 5 posts: \"parts\" has one string per post, in order, each standing alone.",
}


class LLMGenerator:
    """Drafts from an OpenAI-compatible `POST {base_url}/chat/completions` endpoint, under a daily token budget."""

    def __init__(
        self,
        engine: Engine,
        base_url: str,
        model: str,
        api_key: str,
        daily_token_budget: int,
        recent_days: int = 14,
        timeout: float = 30.0,
        *,
        max_retries: int = 4,
        max_regenerations: int = 2,
        max_tokens: int = 600,
        topics: dict[str, str] | None = None,
        formats: dict[str, str] | None = None,
        rng: random.Random | None = None,
    ) -> None:
        self.engine = engine
        self.base_url = base_url.rstrip("/")
        self.model = model
        self._api_key = api_key
        self.daily_token_budget = daily_token_budget
        self.recent_days = recent_days
        self.timeout = timeout
        self.max_retries = max_retries
        self.max_regenerations = max_regenerations
        self.max_tokens = max_tokens
        self._topics = dict(topics or TOPICS)
        self._formats = dict(formats or FORMATS)
        self.rng = rng or random.Random()
        self.last_reason: str | None = None
        self.rejected: list[tuple[str, str]] = []
        self.exhausted = False
        # Any OpenAI-compatible server: the package's client brings the HTTP, retries and timeouts. Imported
        # here, not at the top: it costs a second of CPU, and every posting run imports this module.
        import openai

        self._client = openai.OpenAI(base_url=self.base_url, api_key=api_key or "unset", timeout=timeout,
                                     max_retries=max_retries)
        self._session: dict[str, list[str]] = {}  # texts handed out in this process, per account

    def __repr__(self) -> str:  # never show the key
        return f"LLMGenerator(base_url={self.base_url!r}, model={self.model!r}, api_key=***)"

    def topics(self) -> list[str]:
        return sorted(self._topics)

    def formats(self) -> list[str]:
        return sorted(self._formats)

    def release(self, draft: GeneratedDraft) -> None:
        """Nothing to give back: an LLM output is not reused."""

    # ---- budget

    def spent_today(self) -> int:
        with self.engine.connect() as conn:
            day = db_now(conn).strftime("%Y-%m-%d")
            return int(conn.execute(sa.select(s.llm_spend.c.tokens).where(s.llm_spend.c.day == day)).scalar() or 0)

    def _record_spend(self, tokens: int) -> None:
        """Add to today's row atomically (an upsert, so concurrent planners cannot lose an update)."""
        if tokens <= 0:
            return
        with transaction(self.engine) as conn:
            day = db_now(conn).strftime("%Y-%m-%d")
            stmt = _dialect_insert(conn, s.llm_spend).values(day=day, tokens=tokens)
            conn.execute(stmt.on_conflict_do_update(
                index_elements=["day"], set_={"tokens": s.llm_spend.c.tokens + stmt.excluded.tokens}
            ))

    # ---- generation

    def generate(self, account: str, topic: str | None, format: str | None, kind: str) -> GeneratedDraft | None:
        """A validated draft, or None with `last_reason` (budget spent, endpoint down, every output rejected)."""
        self.last_reason = None
        self.exhausted = False
        topic = topic if topic in self._topics else self.rng.choice(self.topics())
        format = format if format in self._formats else self.rng.choice(self.formats())
        kind = kind if kind in KINDS else "single"
        recent_list = recent_texts(self.engine, account, self.recent_days) + self._session.get(account, [])
        recent = ShingleIndex(recent_list)
        feedback: str | None = None
        for attempt in range(1 + self.max_regenerations):
            try:
                if self.spent_today() >= self.daily_token_budget:
                    raise BudgetExhausted(
                        f"daily token budget of {self.daily_token_budget} is spent; generation resumes after 00:00 UTC"
                    )
                content = self._complete(self._messages(account, topic, format, kind, recent_list, feedback))
            except BudgetExhausted as exc:
                self.exhausted = True
                self.last_reason = str(exc)
                return None
            except LLMError as exc:
                self.last_reason = f"LLM unavailable: {exc}"
                return None
            try:
                parts = validate_parts(self._parse(content, kind))
                if kind == "thread" and len(parts) < 2:
                    raise ContentError("a thread was asked for but the answer has one part")
                if kind == "single" and len(parts) > 1:
                    raise ContentError(f"a single post was asked for but the answer has {len(parts)} parts")
            except ContentError as exc:
                feedback = f"it was rejected: {exc}"
                self.rejected.append(("llm_invalid", f"{topic}/{format} attempt {attempt + 1}: {exc}"))
                continue
            similar = max(recent.most_similar(" ".join(parts)), *(recent.most_similar(p) for p in parts))
            if similar >= recent.threshold:
                feedback = "it was too close to a recent post; write about a different aspect"
                self.rejected.append(
                    ("llm_near_duplicate", f"{topic}/{format} attempt {attempt + 1}: Jaccard {similar:.2f} with a recent post")
                )
                continue
            session = self._session.setdefault(account, [])
            session.append(" ".join(parts))
            del session[:-200]  # texts not yet in the database; older ones are there by now
            return GeneratedDraft(parts=tuple(parts), topic=topic, format=format, key=f"llm-{fingerprint(parts)}")
        self.last_reason = f"{1 + self.max_regenerations} outputs for {topic}/{format} were all rejected"
        return None

    def _messages(self, account: str, topic: str, format: str, kind: str, recent: list[str],
                  feedback: str | None) -> list[dict[str, str]]:
        shown = "\n".join(f"- {t[:200]}" for t in recent[-20:]) or "- (none)"
        user = _USER.format(topic=topic, topic_desc=self._topics[topic], format=format,
                            format_desc=self._formats[format], shape=_SHAPE[kind], recent=shown)
        if feedback:
            user += f"\nYour previous answer could not be used: {feedback}. Write a new one."
        return [{"role": "system", "content": _SYSTEM.format(account=account)}, {"role": "user", "content": user}]

    @staticmethod
    def _parse(content: str, kind: str) -> list[str]:
        """The JSON `{"parts": [...]}` the prompt asks for; tolerate code fences and plain text."""
        text = content.strip()
        fenced = re.match(r"^```(?:json)?\s*(.*?)\s*```$", text, re.S)
        if fenced:
            text = fenced.group(1)
        start, end = text.find("{"), text.rfind("}")
        if start != -1 and end > start:
            try:
                data = json.loads(text[start:end + 1])
                parts = data.get("parts") if isinstance(data, dict) else None
                if isinstance(parts, list) and all(isinstance(p, str) for p in parts):
                    return [p for p in parts if p.strip()]
            except json.JSONDecodeError:
                pass
        if kind == "thread":
            return [p.strip() for p in re.split(r"\n\s*---+\s*\n|\n{2,}", text) if p.strip()]
        return [text]

    def _complete(self, messages: list[dict[str, str]]) -> str:
        """One chat completion; the `openai` client retries 429/5xx/connection errors (honouring Retry-After,
        with jittered backoff) and applies the timeout. Counts the tokens the answer reports."""
        import openai

        try:
            answer = self._client.chat.completions.create(
                model=self.model, messages=messages, temperature=0.9, max_tokens=self.max_tokens)  # type: ignore[arg-type]
        except openai.APIStatusError as exc:
            detail = self._scrub(exc.response.text[:300])
            raise LLMError(f"HTTP {exc.status_code} from {self.base_url}/chat/completions: {detail} "
                           f"(after at most {self.max_retries} retries)") from None
        except openai.APIError as exc:  # connection refused, timeout, unparsable answer
            raise LLMError(f"{type(exc).__name__} calling {self.base_url}/chat/completions: "
                           f"{self._scrub(str(exc))} (after {self.max_retries} retries)") from None
        return self._content(answer, messages)

    def _content(self, answer: Any, messages: list[dict[str, str]]) -> str:
        try:
            content = answer.choices[0].message.content
        except (AttributeError, IndexError, TypeError):
            raise LLMError("the answer has no choices[0].message.content") from None
        tokens = getattr(answer.usage, "total_tokens", None)
        if not isinstance(tokens, int):  # no usage reported: estimate (about 4 characters a token), never 0
            tokens = (sum(len(m["content"]) for m in messages) + len(content or "")) // 4 + 1
        self._record_spend(tokens)
        return str(content or "")

    def _scrub(self, text: str) -> str:
        return text.replace(self._api_key, "***") if self._api_key else text


def make_generator(engine: Engine, settings: Any) -> Generator:
    """The LLM generator when PIPELINE_LLM_BASE_URL is set, else the drafts library (PIPELINE_DRAFTS_DIR or
    the shipped sample)."""
    if settings.llm_base_url:
        return LLMGenerator(
            engine,
            base_url=settings.llm_base_url,
            model=settings.llm_model,
            api_key=settings.llm_api_key,
            daily_token_budget=int(settings.llm_daily_token_budget),
        )
    return DraftsLibrary(engine, Path(settings.drafts_dir) if settings.drafts_dir else None)
