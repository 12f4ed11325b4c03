"""README and docs/ stay true: commands are CI's, tables are the rendered results/ files,
every number is the one its file holds, and nothing points outside the repository."""
import re
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]
README = (ROOT / "README.md").read_text()
EXPERIMENTS_MD = (ROOT / "docs" / "experiments.md").read_text()
PERFORMANCE = (ROOT / "docs" / "performance.md").read_text()


def test_ci_runs_readme_setup_and_test_commands():
    ci = (ROOT / ".ci" / "run").read_text()
    for command in ("python -m pip install -r requirements.txt", "python -m pytest --nbval"):
        assert command in README and command in ci


def test_experiment_tables_are_the_rendered_result_files():
    """results/<name>.md is what the JSON files render to today, and docs/experiments.md's
    rendered blocks are those files (``python -m d2l_ext tables`` refreshes both)."""
    from d2l_ext import results as R
    out = ROOT / "results"
    blocks = {m.group("name"): m.group(0) for m in R.RENDERED.finditer(EXPERIMENTS_MD)}
    tables = sorted(out.glob("*.md"))
    assert tables and blocks, "run python -m d2l_ext tables"
    for table in tables:
        text = R.render_table(table.stem, out)
        assert table.read_text() == f"## {table.stem}\n\n{text}\n", \
            f"{table} is stale: run python -m d2l_ext tables"
        assert table.stem in blocks, f"docs/experiments.md does not show {table}"
        assert text in blocks[table.stem], f"docs/experiments.md differs from {table}"


def test_readme_findings_are_rendered_from_the_result_files():
    """README's and README.zh-CN's verdict tables are what the result files render to."""
    from d2l_ext import results as R
    for page, name in (("README.md", "findings"), ("README.zh-CN.md", "findings-zh")):
        blocks = {m.group("name"): m.group(0) for m in R.RENDERED.finditer((ROOT / page).read_text())}
        assert name in blocks, f"{page} has no rendered {name} block"
        assert R.render_table(name, ROOT / "results") in blocks[name], \
            f"{page}'s findings are stale: run python -m d2l_ext tables"


def test_a_finding_with_one_shared_seed_says_so_and_names_its_command(tmp_path):
    """A claim whose runs share one seed has no interval yet: its row says so, and how to run
    the rest, instead of failing the whole table."""
    import shutil
    from d2l_ext import results as R
    for experiment in {e for _, comparisons in R.FINDINGS for e, _, _ in comparisons}:
        shutil.copytree(ROOT / "results" / experiment, tmp_path / experiment)
    for path in (tmp_path / "cardinality-full").glob("*.json"):
        if not path.stem.endswith("__seed0"):
            path.unlink()
    row = R.findings_table(tmp_path).splitlines()[-1]
    assert row.endswith("| too few seeds for an interval (1): `python -m d2l_ext ablate "
                        "cardinality-full` runs the rest |"), row
    assert "8x19d − 1x64d" in row and " – (1)" in row


def _decimals(text):
    """The decimal numbers of a text (12.3, 0.84, −4.0): the ones that come from runs; not
    section numbers (§5.4, a heading's 5.4, notebook 5's sections 5.1-5.11)."""
    text = re.sub(r"(?m)^#+ .*$", "", text.replace("−", "-"))
    text = re.sub(r"§\s?\d+\.\d+(?:[–-]\d+\.\d+)?", "", text)
    return set(re.findall(r"(?<![\w.])\d+\.\d+(?![\w.])", text))


def test_every_decimal_in_the_experiments_prose_is_in_a_rendered_table():
    """What the prose of docs/experiments.md quotes, a table of results/ or a notebook's
    stored output holds."""
    from d2l_ext import results as R
    prose = R.RENDERED.sub("", EXPERIMENTS_MD)
    prose = re.sub(r"```.*?```", "", prose, flags=re.S)
    sources = "".join(p.read_text() for p in (ROOT / "results").glob("*.md"))
    sources += "".join(_notebook_outputs(p) for p in (ROOT / "notebooks").glob("*.ipynb"))
    missing = sorted(_decimals(prose) - _decimals(sources))
    assert not missing, f"docs/experiments.md quotes numbers no table or output holds: {missing}"


def test_nothing_points_outside_the_repository():
    files = [ROOT / "README.md", *ROOT.glob("docs/*.md"), *ROOT.glob("notebooks/**/*.ipynb"),
             *ROOT.glob("d2l_ext/*.py"), *ROOT.glob("tests/*.py")]
    for f in files:
        if f.name == "test_docs.py":
            continue
        assert "shared/" not in f.read_text(), f"{f} points to shared/, outside the repository"


def test_performance_speed_numbers_come_from_the_benchmark_file():
    import json
    speed = json.loads((ROOT / "results" / "speed.json").read_text())
    for name, value in speed["images_per_s"].items():
        assert re.search(rf"\| {re.escape(name)} \| {value:.0f} \|", PERFORMANCE), name


def test_performance_gpu_and_full_numbers_come_from_their_files():
    import json
    gpu = json.loads((ROOT / "results" / "gpu.json").read_text())
    assert f"trains to {100 * gpu['five_class']['test_acc']:.1f}%" in PERFORMANCE
    assert f"on {100 * gpu['checkpoint_cpu_vs_gpu_bf16_agreement']:.1f}% of 1,000" in PERFORMANCE
    speeds = " / ".join(f"{round(r['train_img_s'], -2):,.0f}" for r in gpu["throughput"])
    assert f"about {speeds} images/s" in PERFORMANCE
    full = sorted((ROOT / "results" / "archive" / "full-test-as-val" / "full").glob("*.json"))
    accs = [100 * json.loads(p.read_text())["test_acc"] for p in full]
    assert f"**{accs[0]:.2f}% and {accs[1]:.2f}%**" in PERFORMANCE


def test_performance_cpu_search_numbers_come_from_the_logs():
    logs = sorted((ROOT / "results" / "cpu10min_search").glob("*.log"))
    assert len(logs) == 6
    for log in logs:
        text = log.read_text()
        assert text.startswith("python -m d2l_ext train")          # the command comes first
        acc, secs = re.search(r"test accuracy: ([0-9.]+) .* ([0-9]+)s of training", text).groups()
        assert f"{100 * float(acc):.2f}% in {secs} s" in PERFORMANCE, log.name


def test_performance_cpu_estimates_come_from_the_log():
    log = (ROOT / "results" / "cpu_estimates.log").read_text()
    assert "python -m d2l_ext ablate full --estimate --seeds 0 1\n[full]" in log  # command first
    runs = re.findall(r"\[full\] .*: (\d+) training images/s .*about (\d+) min per epoch, "
                      r"([0-9.]+) h per run of (\d+) epochs", log)
    fifty = [r for r in runs if r[3] == "50"]
    hundred = [r for r in runs if r[3] == "100"]
    assert len(fifty) == len(hundred) == 2
    assert f"**{fifty[0][2]}–{fifty[1][2]} h per run**" in PERFORMANCE
    assert f"measured {fifty[0][0]} and {fifty[1][0]} training images/s" in PERFORMANCE
    assert f"{fifty[0][1]}–{fifty[1][1]} min per epoch" in PERFORMANCE
    assert f"100-epoch\n  run below: {hundred[0][2]}–{hundred[1][2]} h" in PERFORMANCE
    cpu10 = re.findall(r"about \d+ s per epoch, (\d+) min per run of 14 epochs", log)
    assert f"projected at {cpu10[0]} and {cpu10[1]} min" in PERFORMANCE


def test_performance_flip_tta_numbers_come_from_the_evaluate_output():
    text = (ROOT / "results" / "cpu10min_search" / "flip_tta.txt").read_text()
    runs = re.findall(r"(python -m d2l_ext evaluate .*)\ntest accuracy: ([0-9.]+) .*\n"
                      r"with flip TTA: +([0-9.]+)", text)
    assert len(runs) == 2
    for _, plain, tta in runs:
        assert f"from {100 * float(plain):.2f}% to {100 * float(tta):.2f}%" in PERFORMANCE


def test_performance_cpu_bf16_table_comes_from_the_benchmark_file():
    import json
    bench = json.loads((ROOT / "results" / "cpu_bf16.json").read_text())
    assert len(bench["rows"]) == 3 and bench["native_bf16"] is True
    for r in bench["rows"]:
        assert (f"| {r['size']}×{r['size']} | {r['fp32_img_s']:.0f} | {r['bf16_img_s']:.0f} | "
                f"{r['speedup']:.2f}× |") in PERFORMANCE


def test_performance_cpu_budget_numbers_come_from_their_files():
    import json
    files = sorted((ROOT / "results" / "archive" / "full-test-as-val" / "full-cpu10min").glob("*.json"))
    runs = [json.loads(p.read_text()) for p in files]
    accs = " and ".join(f"{100 * r['test_acc']:.2f}%" for r in runs)
    secs = " and ".join(f"{r['seconds']:.0f}" for r in runs)
    assert f"**{accs}** (seeds 0 and 1) in {secs} s" in PERFORMANCE
    archived = ROOT / "results" / "archive" / "full-cpu10min-28px-fp32-14ep__seed0.json"
    old = json.loads(archived.read_text())
    assert f"reached {100 * old['test_acc']:.2f}% in {old['seconds']:.0f} s with seed 0" in PERFORMANCE


def test_train_default_lr_is_the_one_the_sweep_chose():
    from d2l_ext.experiments import selected_lr
    from d2l_ext.recipes import TRAIN_LR
    assert TRAIN_LR == selected_lr("ResNeXt, 3 stages", ROOT / "results")


def test_a_five_epoch_main_command_has_no_validation_loss_spike():
    """The epoch-1 spike (batch norm's running statistics) is gone: no val loss above 10."""
    log = (ROOT / "results" / "main_command_5ep.log").read_text()
    assert log.startswith("$ python -m d2l_ext train --epochs 5")
    losses = [float(v) for v in re.findall(r"val loss ([0-9.]+)", log)]
    assert len(losses) == 5 and max(losses) < 10


def main_command_numbers():
    """The main command's test accuracy (%), training seconds and wall time from its log."""
    log = (ROOT / "results" / "main_command.log").read_text()
    assert log.startswith("$ OMP_NUM_THREADS=1 /usr/bin/time -v python -m d2l_ext train ")
    acc, secs = re.search(r"test accuracy: ([0-9.]+) \(5000 images, read once\) after 60 epochs, "
                          r"(\d+)s of training", log).groups()
    wall = re.search(r"Elapsed \(wall clock\) time \(h:mm:ss or m:ss\): (\d+):(\d+)", log).groups()
    assert max(float(v) for v in re.findall(r"val loss ([0-9.]+)", log)) < 10
    return dict(acc=100 * float(acc), secs=secs, minutes=int(wall[0]), seconds=int(wall[1]))


def test_readme_main_command_numbers_come_from_its_log():
    n = main_command_numbers()
    assert f"**{n['acc']:.2f}% test accuracy**" in README and f"{n['secs']} s of training" in README
    assert f"{n['minutes']} min {n['seconds']} s in all" in README


def _notebook_outputs(path):
    import json
    text = []
    for cell in json.loads(path.read_text())["cells"]:
        for out in cell.get("outputs", []):
            text.append("".join(out.get("text", "")))
            for kind in ("text/plain", "text/markdown"):
                text.append("".join(out.get("data", {}).get(kind, "")))
    return "\n".join(text)


def test_every_decimal_in_notebook_5s_prose_is_in_an_output_or_a_table():
    """Notebook 5 (both editions) quotes only numbers its outputs or results/*.md show."""
    import json
    sources = "".join(p.read_text() for p in (ROOT / "results").glob("*.md"))
    sources += "".join(_notebook_outputs(p) for p in (ROOT / "notebooks").glob("*.ipynb"))
    have = _decimals(sources)
    for nb in (ROOT / "notebooks" / "05_experiments.ipynb",
               ROOT / "notebooks" / "zh" / "05_experiments.ipynb"):
        prose = "\n".join("".join(c["source"]) for c in json.loads(nb.read_text())["cells"]
                           if c["cell_type"] == "markdown")
        prose = re.sub(r"`[^`]*`", "", prose)           # code (recipe names, calls)
        missing = sorted(_decimals(prose) - have)
        assert not missing, f"{nb.relative_to(ROOT)} quotes numbers no output or table holds: {missing}"


def test_every_decimal_where_report_md_checks_a_claim_is_in_an_output_or_a_table():
    """docs/report.md's 'Checked in' paragraphs quote what the runs and notebooks show."""
    text = (ROOT / "docs" / "report.md").read_text()
    checked = "\n".join(re.findall(r"\*\*Checked in:\*\*.*?(?:\n\n|\Z)", text, flags=re.S))
    assert checked.count("Checked in") >= 3
    sources = "".join(p.read_text() for p in (ROOT / "results").glob("*.md"))
    sources += "".join(_notebook_outputs(p) for p in (ROOT / "notebooks").glob("*.ipynb"))
    missing = sorted(_decimals(checked) - _decimals(sources) - {"0.1", "24.6"})  # the report's own
    assert not missing, f"docs/report.md's checks quote numbers no table or output holds: {missing}"


def test_ddp_scaling_in_package_md_comes_from_its_benchmark_file():
    import json
    runs = json.loads((ROOT / "results" / "ddp.json").read_text())["runs"]
    text = (ROOT / "docs" / "package.md").read_text()
    one, two = runs["1"], runs["2"]
    assert (f"{one['images_per_s']:.0f} images/s with 1 process, {two['images_per_s']:.0f} with 2 "
            f"(gloo), a scaling efficiency of {two['scaling_efficiency']:.2f}") in text


def test_an_empty_rendered_block_ends_at_its_own_marker(tmp_path):
    """A page's new, empty block is filled alone: it does not swallow the block after it."""
    from d2l_ext import results as R
    page = tmp_path / "page.md"
    page.write_text("<!-- rendered: a -->\n<!-- /rendered -->\n\ntext\n\n"
                    "<!-- rendered: b -->\nold\n<!-- /rendered -->\n")
    names = [m.group("name") for m in R.RENDERED.finditer(page.read_text())]
    assert names == ["a", "b"]


def test_experiments_full_pair_times_and_rates_are_the_records():
    """The full Fashion-MNIST section's minutes per run (the median of each template's sweep
    runs: one run was slowed by other work) and chosen rates are the result files'."""
    import json
    import statistics
    from d2l_ext.experiments import selected_lr
    runs = [json.loads(p.read_text())
            for p in (ROOT / "results" / "cardinality-full-lr-sweep").glob("*.json")]
    minutes = {t: round(statistics.median(r["seconds"] for r in runs
                                          if r["label"].startswith(f"ResNeXt {t},")) / 60)
               for t in ("1x64d", "8x19d")}
    assert (f"about {minutes['1x64d']} minutes a run for 1x64d and {minutes['8x19d']} for "
            f"8x19d") in " ".join(EXPERIMENTS_MD.split())
    chose = {}      # rate -> the templates that chose it, in the templates' order
    for t in ("1x64d", "2x44d", "4x29d", "8x19d"):
        lr = selected_lr(f"ResNeXt {t}", ROOT / "results", "cardinality-full-lr-sweep")
        chose.setdefault(lr, []).append(t)
    for lr, ts in chose.items():
        names = ts[0] if len(ts) == 1 else ", ".join(ts[:-1]) + f" and {ts[-1]}"
        assert f"{names} chose {lr:g}" in " ".join(EXPERIMENTS_MD.split())
    past_grid = [r for r in runs if r["config"]["lr"] == 1]     # the one step past the grid
    assert [r["label"] for r in past_grid] == ["ResNeXt 4x29d, lr 1"]
    assert f"(1 gives {100 * past_grid[0]['val_acc']:.1f}%)" in " ".join(EXPERIMENTS_MD.split())
    # "The pair ... ran on this CPU in fp32 ... 2x44d and 4x29d ran on a lent GPU"
    devices = {r["label"].split(",")[0].split()[1]: r["device"] for r in runs}
    assert devices == {"1x64d": "cpu", "8x19d": "cpu", "2x44d": "cuda", "4x29d": "cuda"}


def test_resnet18_cpu_time_quoted_for_data_size_is_the_records():
    """'ResNet-18 takes nearly five times as long as ResNeXt18 on this CPU (616 s against 131 s':
    its CPU twin (benchmarks/device_check.py) against ResNeXt18 without dropout, seed 0 at
    300 a class, in docs/experiments.md and both editions of notebook 5."""
    import json
    import nbformat
    slow = json.loads((ROOT / "results" / "device_check" / "data-size-300" /
                       "resnet-18__seed0.json").read_text())
    fast = json.loads((ROOT / "results" / "data-size-300" /
                       "resnext18-no-dropout__seed0.json").read_text())
    assert slow["device"] == fast["device"] == "cpu" and slow["threads"] == fast["threads"] == 1
    assert 4.5 <= slow["seconds"] / fast["seconds"] < 5     # "nearly five times"
    times = f"{slow['seconds']:.0f} s against {fast['seconds']:.0f} s"
    assert f"nearly five times as long as ResNeXt18 on this CPU ({times}" in \
        " ".join(EXPERIMENTS_MD.split())
    en = nbformat.read(ROOT / "notebooks" / "05_experiments.ipynb", as_version=4)
    assert f"nearly five times as long as ResNeXt18 on this CPU ({times}" in \
        " ".join(next(c for c in en.cells if c.id == "size01").source.split())
    zh = nbformat.read(ROOT / "notebooks" / "zh" / "05_experiments.ipynb", as_version=4)
    zh_text = next(c for c in zh.cells if c.id == "size01").source
    assert "将近是 ResNeXt18 的五倍" in zh_text and f"{slow['seconds']:.0f} 秒对 {fast['seconds']:.0f} 秒" in zh_text
