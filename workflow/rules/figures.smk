# Figures from the summaries alone: editing a plotting script reruns only figures.


rule figure:
    input:
        summary=res(layout.SUMMARY_CSV),
        verdict=res(layout.VERDICT),
    output:
        png=report(
            res(layout.FIGURE_DIR + "/{figure}.png"),
            category="{hyp}",
            caption="../report/figure.rst",
            labels={"hypothesis": "{hyp}", "figure": "{figure}"},
        ),
        csv=res(layout.FIGURE_DIR + "/{figure}.csv"),
    log:
        res("logs/figures/{hyp}/{figure}.log"),
    script:
        "../scripts/figure.py"
