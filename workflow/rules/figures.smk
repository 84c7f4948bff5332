# Figures: one job per hypothesis draws all of its figures (the evidence figures from its
# summary alone, a time-series panel per measured point from its ingested tables) and
# the verdict snippet its report captions include. The plots package's sources are
# inputs too, so editing a plotting script reruns these jobs and nothing else.
#
# `snakemake --report results/report.html H_all`: one category per hypothesis, the
# evidence figures and the time series as subcategories, captions from
# workflow/report/figures/ (RST with Jinja), labels carrying the verdict.

PLOTS_SOURCES = sorted(str(p) for p in Path(plots.__file__).parent.rglob("*.py"))
CAPTIONS = Path(workflow.basedir) / "workflow" / "report" / "figures"


def figure_code(hyp):
    """The plots package and any figure code of the entry outside it (a plugin's, the
    legacy track's): editing one reruns the figures job."""
    modules = {f.draw.partition(":")[0] for f in ENTRIES[hyp].figures}
    own = [importlib.util.find_spec(m).origin for m in modules if not m.startswith("spark_harness.plots")]
    return PLOTS_SOURCES + sorted(own)


def caption(hyp, name):
    """A figure's caption: its registry entry's, else its file under workflow/report/figures
    (relative to this file), else the generic one."""
    own = next((f.caption for f in ENTRIES[hyp].figures if f.name == name and f.caption), "")
    if own:
        return str(Path(own).resolve())
    own = "timeseries.rst" if name == "timeseries" else f"{hyp}/{name}.rst"
    return str(Path("../report/figures") / (own if (CAPTIONS / own).is_file() else "figure.rst"))


def report_labels(figure, stack="all", point="all"):
    """Labels read from the job's verdict when the report is made (not when it runs)."""
    return lambda wildcards, input: plots.report_labels(input.verdict, figure, stack, point)


def figure_outputs(hyp):
    """Every file the job of `hyp` writes; the PNGs flagged for the report."""
    d = PLAN.path(layout.FIGURE_DIR, hyp=hyp)
    # PNG -> (caption name, label: figure, stack, point; subcategory)
    names = plots.figure_names(hyp, PLAN.track)
    shown = {f"{n}.png": (n, n, "all", "all", "evidence") for n in names}
    for stack, point in figure_points(hyp):
        png = f"{plots.timeseries_name(stack, point)}.png"
        shown[png] = ("timeseries", "time series", stack, point, "time series per point")
    out = []
    for f in plots.files(hyp, figure_points(hyp), PLAN.track):
        if f == plots.VERDICT_RST:
            continue  # a named output of the rule
        if f not in shown:
            out.append(str(d / f))
            continue
        name, figure, stack, point, sub = shown[f]
        labels = report_labels(figure, stack, point)
        category = ENTRIES[hyp].report_category
        flagged = report(str(d / f), caption=caption(hyp, name), category=category, subcategory=sub, labels=labels)
        out.append(flagged)
    return out


for _hyp in PLAN.hypotheses:

    rule:
        name:
            f"figures_{_hyp}"
        input:
            summary=str(PLAN.path(layout.SUMMARY_CSV, hyp=_hyp)),
            verdict=str(PLAN.path(layout.VERDICT, hyp=_hyp)),
            ingested=[
                str(PLAN.path(pattern, hyp=_hyp, stack=s))
                for s in PLAN.stacks_of(_hyp)
                for pattern in (layout.INGEST_REQUESTS, layout.INGEST_TELEMETRY, layout.INGEST_POINTS)
            ],
            code=figure_code(_hyp),
        output:
            *figure_outputs(_hyp),
            verdict_rst=str(PLAN.path(layout.FIGURE_DIR, hyp=_hyp) / plots.VERDICT_RST),
        params:
            hyp=_hyp,
            title=PLAN.hypotheses[_hyp].get("title", _hyp),
            stacks=PLAN.stacks_of(_hyp),
            sources=[f"{h}/{s}" for h, s in PLAN.sources_of(_hyp)],
            sweep={ax["key"]: ax["values"] for ax in PLAN.hypotheses[_hyp].get("sweep", [])},
            points=[list(p) for p in figure_points(_hyp)],
            ingest={s: str(PLAN.path(layout.INGEST_DIR, hyp=_hyp, stack=s)) for s in PLAN.stacks_of(_hyp)},
            track=PLAN.track,
        # a small job wherever it runs (one rule per hypothesis, so the cluster profiles,
        # which name rules, cannot list them): one core, matplotlib's memory, minutes
        threads: 1
        resources:
            mem_mb=2000,
            runtime=10,
        conda:
            CONDA_ENV
        log:
            res(f"logs/figures/{_hyp}.log"),
        script:
            "../scripts/figures.py"
