# edgeshard-hop-overhead: EdgeShard's time per token (latency plan, one request, 50 Mbit/s) for Llama-2-7B and
# -70B against a fixed overhead per message between devices; the paper's two numbers dashed.
# Inputs (set with -e): datadir = directory written by `edgelab export`; outbase = output path without extension.
if (!exists("datadir")) datadir = "build/plot-data/edgeshard-hop-overhead"
if (!exists("outbase")) outbase = "results/edgeshard-hop-overhead"

set datafile separator "\t"
set datafile missing "nan"
set xlabel "overhead per message between devices (ms)"
set ylabel "time per output token (ms)"
set logscale y
set grid
set key top left
do for [fmt in "png pdf"] {
  if (fmt eq "png") { set terminal pngcairo size 900,520 font ",11" } else { set terminal pdfcairo size 6.5in,3.8in font ",9" }
  set output outbase.".".fmt
  set title "EdgeShard latency plan (simulated): the per-hop overhead each paper number would need"
  plot datadir."/edgeshard-latency.tsv" using (strcol("param.model") eq "Llama-2-7B" ? column("hop_overhead_ms") : NaN):(column("tpot_mean_s")*1000) \
         with linespoints lw 2 pt 7 title "Llama-2-7B (2 stages)", \
       datadir."/edgeshard-latency.tsv" using (strcol("param.model") eq "Llama-2-70B" ? column("hop_overhead_ms") : NaN):(column("tpot_mean_s")*1000) \
         with linespoints lw 2 pt 5 title "Llama-2-70B (11 stages)", \
       75.88 with lines dt 2 lw 1.5 lc rgb "#1f77b4" title "paper 7B: 75.88 ms", \
       3086 with lines dt 2 lw 1.5 lc rgb "#d62728" title "paper 70B: 3086 ms"
}
