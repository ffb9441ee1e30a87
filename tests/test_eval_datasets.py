"""Benchmark loaders: MGSM TSV, JSON Lines, GSM8K '#### N', strict errors."""

from __future__ import annotations

import json

import pytest

from marco_cli.evaluation.datasets import DatasetError, load_dataset


def test_tsv(tmp_path):
    path = tmp_path / "mini.tsv"
    path.write_text("Janet has 16 eggs. How many?\t16\n\nA robe takes 2 bolts.\t5,600\n", encoding="utf-8")
    problems = load_dataset(path)
    assert [(p.id, p.question, p.reference) for p in problems] == [
        ("mini:1", "Janet has 16 eggs. How many?", "16"),
        ("mini:3", "A robe takes 2 bolts.", "5600"),  # blank lines skipped, ids keep line numbers
    ]


def test_jsonl_plain_and_gsm8k(tmp_path):
    path = tmp_path / "gsm.jsonl"
    rows = [
        {"question": "What is 2+2?", "answer": "4"},
        {"question": "Natalia sold clips...", "answer": "She sold 48/2 = <<48/2=24>>24 clips.\n#### 72"},
        {"question": "Big one", "answer": "#### 1,200", "id": "q-17"},
        {"question": "Numeric", "answer": 3.5},
    ]
    path.write_text("\n".join(json.dumps(r) for r in rows) + "\n", encoding="utf-8")
    problems = load_dataset(path)
    assert [p.reference for p in problems] == ["4", "72", "1200", "3.5"]
    assert problems[2].id == "q-17" and problems[0].id == "gsm:1"


def test_format_sniffed_without_suffix(tmp_path):
    path = tmp_path / "data.txt"
    path.write_text('{"question": "q", "answer": "1"}\n', encoding="utf-8")
    assert load_dataset(path)[0].reference == "1"


@pytest.mark.parametrize(
    ("name", "content", "message"),
    [
        ("a.tsv", "ok question\t3\nno answer here\n", "a.tsv:2: expected 'question<TAB>answer', found 1"),
        ("a.tsv", "q\t3\tx\n", "a.tsv:1: expected 'question<TAB>answer', found 3"),
        ("a.tsv", "q\tseven\n", "a.tsv:1: the answer 'seven' is not a number"),
        ("a.tsv", "\t7\n", "a.tsv:1: the question is empty"),
        ("a.jsonl", '{"question": "q", "answer": "1"}\n{"question": "q"\n', "a.jsonl:2: not valid JSON"),
        ("a.jsonl", '["q", "1"]\n', "a.jsonl:1: expected a JSON object"),
        ("a.jsonl", '{"question": "", "answer": "1"}\n', "a.jsonl:1: 'question' must be a non-empty string"),
        ("a.jsonl", '{"question": "q", "answer": null}\n', "a.jsonl:1: 'answer' must be a string or a number"),
        ("a.jsonl", '{"question": "q", "answer": "#### many"}\n', "a.jsonl:1: the answer 'many' is not a number"),
        (
            "a.jsonl",
            '{"question": "q", "answer": "1", "id": 1}\n{"question": "r", "answer": "2", "id": 1}\n',
            "question id '1' appears twice",
        ),
        ("a.tsv", "\n\n", "a.tsv: no questions in the file"),
    ],
)
def test_bad_files_fail_with_one_line_naming_the_line(tmp_path, name, content, message):
    path = tmp_path / name
    path.write_text(content, encoding="utf-8")
    with pytest.raises(DatasetError) as info:
        load_dataset(path)
    text = str(info.value)
    assert message in text and "\n" not in text
    assert text.startswith(str(tmp_path))


def test_missing_and_binary_files(tmp_path):
    with pytest.raises(DatasetError, match="dataset not found"):
        load_dataset(tmp_path / "nope.tsv")
    path = tmp_path / "bin.tsv"
    path.write_bytes(b"\xff\xfe\x00q\t1\n")
    with pytest.raises(DatasetError, match="not UTF-8"):
        load_dataset(path)
