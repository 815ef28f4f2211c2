;; no_exports: a valid module with nothing to call.
(module
  (memory 1)
  (func $unused))
