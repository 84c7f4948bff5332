# One target per hypothesis of the plan (`snakemake --cores 1 H2B`), generated from the
# registry (spark_harness.registry): a hypothesis added there gets its target, its
# summary, its figures job and its row in the verdict table with no rule written here.
# Where the plan holds both stacks of a comparison (H2A/H2B, H4A/H4B, H8A/H8B), one
# chart puts Stack A against Stack B (results/figures/compare/).


for _hyp in PLAN.hypotheses:

    rule:
        name:
            _hyp
        input:
            hypothesis_targets(_hyp),


# a hypothesis the registry knows but this plan leaves out: its target says so and
# names the plan's hypotheses, instead of Snakemake's bare "no rule to produce"
for _hyp in sorted(set(registry.load(PLAN.track)) - set(PLAN.hypotheses)):

    rule:
        name:
            _hyp
        input:
            lambda w, hyp=_hyp: hypothesis_targets(hyp),


for _c in COMPARISONS:

    rule:
        name:
            f"compare_{_c.name}"
        input:
            a=str(PLAN.path(layout.VERDICT, hyp=_c.of[0])),
            b=str(PLAN.path(layout.VERDICT, hyp=_c.of[1])),
            code=PLOTS_SOURCES,
        output:
            png=report(
                f"{COMPARE_DIR}/{_c.name}.png",
                caption="../report/figures/compare.rst",
                category=registry.COMPARE,
                labels={"figure": _c.name, "stacks": " vs ".join(_c.of)},
            ),
            svg=f"{COMPARE_DIR}/{_c.name}.svg",
            csv=f"{COMPARE_DIR}/{_c.name}.csv",
        params:
            name=_c.name,
        threads: 1
        resources:
            mem_mb=2000,
            runtime=10,
        conda:
            CONDA_ENV
        log:
            res(f"logs/figures/compare_{_c.name}.log"),
        script:
            "../scripts/compare.py"


rule verdicts:
    """Verdicts at a glance: summary/verdicts.csv, .md, and the report's front page."""
    input:
        verdicts=[str(PLAN.path(layout.VERDICT, hyp=h)) for h in PLAN.hypotheses],
        intro=INTRO,
    params:
        not_applicable=PLAN.not_applicable,
        track=PLAN.track,
    output:
        csv=res(verdict_table.VERDICTS_CSV),
        md=res(verdict_table.VERDICTS_MD),
        front=res(verdict_table.FRONT_PAGE),
    conda:
        CONDA_ENV
    log:
        res("logs/verdicts.log"),
    script:
        "../scripts/verdicts.py"
