# spec-rtt-crossover: time per output token against the round trip (2 × one-way latency) for speculative
# decoding with k = 1…8 drafted tokens (Orin Nano Super drafting with Llama 3.2 1B for Llama 3.1 8B on an RTX 3090
# server, acceptance rate 0.7 assumed), beside the split target (a round trip per token), the target streamed
# from the server and the draft alone.
# Inputs (set with -e): datadir = directory written by `edgelab export` (labels.txt, <label>.tsv);
#                       outbase = output path without extension (writes outbase.png and outbase.pdf).
if (!exists("datadir")) datadir = "build/plot-data/spec-rtt-crossover"
if (!exists("outbase")) outbase = "results/spec-rtt-crossover"
labels = system("cat '".datadir."/labels.txt'")
drafts = system("grep '^speculative' '".datadir."/labels.txt' | tr '\\n' ' '")

set datafile separator "\t"
set datafile missing "nan"
set grid
# More lines than the default eight colours: the ninth and later get their own.
set linetype 9 lc rgb "#7f7f7f" lw 2 pt 5
set linetype 10 lc rgb "#8c564b" lw 2 pt 9
set xlabel "round-trip time (ms)"

do for [fmt in "png pdf"] {
  if (fmt eq "png") { set terminal pngcairo size 1300,560 font ",11" } else { set terminal pdfcairo size 9in,3.7in font ",9" }
  set output outbase.".".fmt
  set multiplot layout 1,2 title "Llama 3.1 8B FP16 on an RTX 3090 server, Llama 3.2 1B draft on a Jetson Orin Nano Super, 100 Mbit/s (simulated)"
  set ylabel "time per output token (ms)"
  set key top left font ",9"
  plot for [l in labels] datadir."/".l.".tsv" using (2*column("latency_ms")):(column("tpot_mean_s")*1000) \
       with linespoints lw 2 pt 7 title l
  set ylabel "tokens per verification"
  set yrange [0:*]
  plot for [l in drafts] datadir."/".l.".tsv" using (2*column("latency_ms")):"tokens_per_verification" \
       with linespoints lw 2 pt 7 title l
  unset yrange
  unset multiplot
}
