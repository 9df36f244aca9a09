"""Reading correctionlib documents: JSON numbers like correctionlib, schema validation,
and the checks correctionlib's C++ loader makes."""
