"""TRENDY land-model output to ILAMB-ready CF NetCDF, one file per process.

Modules: ``units`` (clean and convert unit strings), ``timeaxis`` (decode every TRENDY time
convention), ``convert`` (stream one file into a CF file), ``publish`` and ``report`` (the rules
after it), ``synthetic`` (quirky TRENDY-like files for examples, tests and the benchmark).
"""

CONVERTER_VERSION = "1.0.0"
