"""What a run folder holds under fixed names, and the version of the results file's schema.

The runner writes these files, the report reads and writes them, the command line names them. No
imports: the report loads without torch.
"""

RESULTS_FILE = "hybrid_experiment_results.json"
SCHEMA_VERSION = 1  # docs/results-schema.md
ANALYSIS_FILE = "analysis.md"
PLOTS_DIR = "plots"
