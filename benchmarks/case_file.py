"""The case file `finetune_compare.py` hands each framework's script: one JSON object of the
settings both sides run with, and each side's JSON line back on stdout."""

import argparse
import json


def write_case(path: str, case: dict) -> None:
    with open(path, "w", encoding="utf-8") as file:
        json.dump(case, file, indent=1)


def read_case(argv: list[str], description: str) -> dict:
    """The case named by `--case=PATH` in a script's arguments."""
    parser = argparse.ArgumentParser(description=description)
    parser.add_argument("--case", required=True, help="JSON settings from finetune_compare.py")
    with open(parser.parse_args(argv).case, encoding="utf-8") as file:
        return json.load(file)


def print_record(record: dict) -> None:
    """A script's result: the last line of its stdout."""
    print(json.dumps(record), flush=True)
