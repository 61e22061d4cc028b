// Placeholder registration; the codec files are added by the image-pipeline work.
#include <pybind11/pybind11.h>
namespace py = pybind11;
PYBIND11_MODULE(_native, m) {
  m.doc() = "EvoQuality native image pipeline";
  m.def("codecs", []() { return py::dict(); });
}
