# cuda_args.awk — the argument names of the CUDA entry points, for the trampolines of
# runtime/cuda_loader.c. A CUDA build's Makefile rule feeds it cuda_entries.h's list as the
# preprocessor expands it ("@ name (type a, type *b) @ name2 (void) ..."; comments gone)
# and writes $(BUILD)/cuda_args.h: one line per entry point,
#   #define MS_CUDA_ARGS_name (a, b)
# the names in their order: the last identifier of each comma-separated parameter. A
# parameter it cannot read (no name, an array) stops the build; a wrong name cannot
# compile (the trampoline passes it to the function it forwards to).
BEGIN { RS = "@" }
NF {
  name = $1
  p = $0
  sub(/^[^(]*\(/, "", p)    # the text between the outer parentheses
  sub(/\)[^)]*$/, "", p)
  n = split(p, parts, ",")
  args = ""
  for (i = 1; i <= n; i++) {
    a = parts[i]
    gsub(/^[ \t\n]+|[ \t\n]+$/, "", a)
    if (n == 1 && (a == "void" || a == "")) break
    if (!match(a, /[A-Za-z_][A-Za-z0-9_]*$/) || RSTART == 1) {
      printf "cuda_args.awk: cannot read the name of parameter '%s' of %s\n", a, name > "/dev/stderr"
      exit 1
    }
    args = args (args == "" ? "" : ", ") substr(a, RSTART, RLENGTH)
  }
  print "#define MS_CUDA_ARGS_" name " (" args ")"
}
