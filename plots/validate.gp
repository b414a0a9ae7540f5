# validate: the simulator's prediction against the real run, one point per validation case and metric, each
# metric relative to its measured value (so TTFT, time per token and throughput share one axis); the y = x line
# and the ±10% band. Input: validation.tsv from `edgelab export results/validate.h5`.
# Inputs (set with -e): datadir = directory written by `edgelab export`; outbase = output path without extension.
if (!exists("datadir")) datadir = "build/plot-data/validate"
if (!exists("outbase")) outbase = "results/validate"
data = datadir."/validation.tsv"

set datafile separator "\t"
set datafile missing "nan"
set logscale xy
set xlabel "measured (ms for TTFT p50 and TPOT mean, tok/s for throughput)"
set ylabel "predicted by the simulator from the host profile"
set grid
set key top left font ",9"
set samples 200
is(m, s) = (strstrt(strcol("metric"), s) > 0)
sel(s) = is(0, s) ? column("measured") : NaN

do for [fmt in "png pdf"] {
  if (fmt eq "png") { set terminal pngcairo size 800,700 font ",11" } else { set terminal pdfcairo size 5.5in,4.8in font ",9" }
  set output outbase.".".fmt
  set title "Simulator vs real runs on this machine (make validate)"
  plot [1:1000] [1:1000] \
       '+' using 1:($1*0.9):($1*1.1) with filledcurves fs transparent solid 0.25 noborder lc rgb "#4daf4a" title "±10%", \
       x with lines dt 2 lc rgb "black" title "y = x", \
       data using (is(0, "TTFT") ? column("measured") : NaN):"predicted" with points pt 7 ps 1.2 lc 1 title "TTFT p50 (ms)", \
       data using (is(0, "TPOT") ? column("measured") : NaN):"predicted" with points pt 5 ps 1.2 lc 2 title "TPOT mean (ms)", \
       data using (is(0, "throughput") ? column("measured") : NaN):"predicted" with points pt 9 ps 1.4 lc 3 title "throughput (tok/s)"
}
