"""What a run folder holds under fixed names, and the version of the results file's schema.

The runner writes these files, the report reads and writes them, the command line names them. No
imports: the report loads without torch.
"""

RESULTS_FILE = "hybrid_experiment_results.json"
SCHEMA_VERSION = 1  # docs/results-schema.md
ANALYSIS_FILE = "analysis.md"
PLOTS_DIR = "plots"

# A strategy's folder, results_dir_name(strategy): the two experiments keep their historical names.
EXPERIMENT_DIRS = {"task_specific": "experiment_1_results", "shared_layer": "experiment_2_results"}


def results_dir_name(strategy: str) -> str:
    return EXPERIMENT_DIRS.get(strategy, f"{strategy}_results")
